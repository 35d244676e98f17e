import io
import json
import struct
import zlib

import pytest
import torch

from fedland.model import build_model
from fedland.model.packed import (
    PackedFileError,
    packed_model_bytes,
    read_packed,
    read_packed_task,
    write_packed,
)
from fedland.quant import packed_size
from tests.conftest import images


def _trained(tiny, bits):
    model = build_model(num_unets=2, order=1, bits=bits, **tiny)
    model(images(4))  # moves the BatchNorm statistics away from their initial values
    return model.eval()


@pytest.mark.parametrize("bits", ["w1a8g8", "w2a4g8", "w3a8g8", "w5a2g8", "w8a8g8", "w32a32g32"])
def test_loaded_model_reproduces_the_quantized_outputs_exactly(tiny, bits, tmp_path):
    model = _trained(tiny, bits)
    x = images(3)
    with torch.no_grad():
        expected = model(x)
    path = tmp_path / f"model-{bits}.fldp"
    written = write_packed(model, path)
    assert path.stat().st_size == written
    loaded = read_packed(path)
    with torch.no_grad():
        actual = loaded(x)
    assert all(torch.equal(a, b) for a, b in zip(actual, expected, strict=True))
    assert str(loaded.config.bits) == bits


def test_quantized_weights_are_stored_at_their_bit_width(tiny):
    fp32 = packed_model_bytes(_trained(tiny, "w32a32g32"))
    for bits, width in (("w1a8g8", 1), ("w2a8g8", 2), ("w4a8g8", 4)):
        model = _trained(tiny, bits)
        data = io.BytesIO()
        written = write_packed(model, data)
        assert written == len(data.getvalue()) == packed_model_bytes(model)
        header = _header(data.getvalue())
        for entry in header["tensors"]:
            if entry["kind"] == "packed":
                count = 1
                for size in entry["shape"]:
                    count *= size
                assert entry["codes"][1] == packed_size(count, width)
        assert packed_model_bytes(model) < fp32 * (width / 32 + 0.2)


def _header(data: bytes) -> dict:
    """The JSON header of a version-2 file (after the 16-byte preamble and the digest)."""
    _, _, length = struct.unpack_from("<8sII", data)
    return json.loads(zlib.decompress(data[48 : 48 + length]))


def test_damaged_files_are_rejected_with_the_file_name(tiny, tmp_path):
    path = tmp_path / "model.fldp"
    write_packed(_trained(tiny, "w1a8g8"), path)
    good = path.read_bytes()
    cases = {
        "bad magic": b"NOTAFILE" + good[8:],
        "version 7": good[:8] + struct.pack("<I", 7) + good[12:],
        "data section": good[:-10],
        "truncated header": good[:40],
        "too short": good[:5],
    }
    for message, content in cases.items():
        broken = tmp_path / "broken.fldp"
        broken.write_bytes(content)
        with pytest.raises(PackedFileError, match=f"broken.fldp.*{message}"):
            read_packed(broken)
    with pytest.raises(PackedFileError, match="no such packed model file"):
        read_packed(tmp_path / "missing.fldp")


def test_a_header_pointing_outside_the_data_is_rejected(tiny):
    data = io.BytesIO()
    write_packed(_trained(tiny, "w1a8g8"), data)
    raw = data.getvalue()
    header = _header(raw)
    header["tensors"][3]["codes" if "codes" in header["tensors"][3] else "scale"][0] = 10**9
    body = zlib.compress(json.dumps(header).encode())
    _, _, length = struct.unpack_from("<8sII", raw)
    forged = raw[:8] + struct.pack("<II", 1, len(body)) + body + raw[48 + length :]  # version 1
    with pytest.raises(PackedFileError, match="outside the data section"):
        read_packed(forged)


def _forge(raw: bytes, header: dict, data: bytes, *, resign: bool) -> bytes:
    """A version-2 file with `header` and `data`; `resign`: with a checksum that matches."""
    import hashlib

    body = zlib.compress(json.dumps(header, separators=(",", ":")).encode())
    digest = hashlib.sha256(body + data).digest() if resign else raw[16:48]
    return raw[:8] + struct.pack("<II", 2, len(body)) + digest + body + data


def _data(raw: bytes) -> bytes:
    _, _, length = struct.unpack_from("<8sII", raw)
    return raw[48 + length :]


def test_changed_bytes_or_swapped_offsets_fail_the_checksum(tiny):
    out = io.BytesIO()
    write_packed(_trained(tiny, "w2a8g8"), out)
    raw = out.getvalue()
    header, data = _header(raw), bytearray(_data(raw))
    data[len(data) // 2 : len(data) // 2 + 16] = bytes(16)  # changed in place, same length
    with pytest.raises(PackedFileError, match="do not match the checksum"):
        read_packed(_forge(raw, header, bytes(data), resign=False))
    floats = [e for e in header["tensors"] if e["kind"] == "float32"]
    same = next((a, b) for a in floats for b in floats
                if a is not b and a["data"][1] == b["data"][1])  # fmt: skip
    same[0]["data"], same[1]["data"] = same[1]["data"], same[0]["data"]
    with pytest.raises(PackedFileError, match="do not match the checksum"):
        read_packed(_forge(raw, header, _data(raw), resign=False))


def test_a_header_claiming_a_huge_model_is_refused_before_allocating(tiny):
    out = io.BytesIO()
    write_packed(_trained(tiny, "w1a8g8"), out)
    raw = out.getvalue()
    header = _header(raw)
    header["model"]["width"] = 10**6  # a model of terabytes, with a matching checksum
    with pytest.raises(PackedFileError, match="describes a model of .* values; the file holds"):
        read_packed(_forge(raw, header, _data(raw), resign=True))


def test_a_model_with_nan_weights_is_refused_by_tensor(tiny):
    model = _trained(tiny, "w32a32g32")
    name, parameter = next(iter(model.named_parameters()))
    with torch.no_grad():
        parameter.view(-1)[0] = float("nan")
    out = io.BytesIO()
    write_packed(model, out)
    with pytest.raises(PackedFileError, match=f"{name}.*NaN or Inf"):
        read_packed(out.getvalue())


def test_the_task_card_travels_in_the_header(tiny, tmp_path):
    card = {"dataset": "wflw", "sigma": 1.5, "dark": False, "flip_test": False}
    write_packed(_trained(tiny, "w2a8g8"), tmp_path / "with.fldp", card)
    write_packed(_trained(tiny, "w2a8g8"), tmp_path / "without.fldp")
    assert read_packed_task(tmp_path / "with.fldp") == card
    assert read_packed_task(tmp_path / "without.fldp") is None
