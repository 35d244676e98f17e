import pytest

from fedland.quant import BitSpec, BitSpecError


def test_parse_and_print_round_trip():
    spec = BitSpec.parse("w1a8g8")
    assert (spec.weights, spec.activations, spec.gradients) == (1, 8, 8)
    assert str(spec) == "w1a8g8"
    assert BitSpec.parse("W32A32G32").full_precision


@pytest.mark.parametrize("text", ["w1a8", "1-8-8", "w1a8g8x", "", "wa8g8"])
def test_malformed_setting_is_rejected_with_the_expected_form(text):
    with pytest.raises(BitSpecError, match="wXaYgZ"):
        BitSpec.parse(text)


@pytest.mark.parametrize(
    ("text", "part"), [("w9a8g8", "weight"), ("w1a16g8", "activation"), ("w1a8g1", "gradient")]
)
def test_unsupported_width_names_the_part_and_the_allowed_values(text, part):
    with pytest.raises(BitSpecError, match=f"{part} bits must be one of"):
        BitSpec.parse(text)
