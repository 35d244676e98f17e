import pytest

from fedland.quant import BitSpec, BitSpecError


def test_parse_and_print_round_trip():
    spec = BitSpec.parse("w1a8g8")
    assert (spec.weights, spec.activations, spec.gradients) == (1, 8, 8)
    assert str(spec) == "w1a8g8"
    assert BitSpec.parse(" W2A4G32 ") == BitSpec(2, 4, 32)
    assert BitSpec.parse(spec) is spec


@pytest.mark.parametrize(
    ("text", "full"), [("w32a32g32", True), ("w32a32g8", False), ("w1a32g32", False)]
)
def test_full_precision_means_every_part_is_float(text, full):
    assert BitSpec.parse(text).full_precision is full
    assert BitSpec() == BitSpec.parse("w32a32g32")


@pytest.mark.parametrize("text", ["w1a8", "1-8-8", "w1a8g8x", "", "wa8g8"])
def test_malformed_setting_is_rejected_with_the_expected_form(text):
    with pytest.raises(BitSpecError, match="wXaYgZ"):
        BitSpec.parse(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("w9a8g8", "weight bits must be one of 1, 2, 3, 4, 5, 6, 7, 8, 32; got 9"),
        ("w1a16g8", "activation bits must be one of 1, 2, 3, 4, 5, 6, 7, 8, 32; got 16"),
        ("w1a8g1", "gradient bits must be one of 2, 3, 4, 5, 6, 7, 8, 32; got 1"),
    ],
)
def test_unsupported_width_names_the_part_and_the_allowed_values(text, message):
    with pytest.raises(BitSpecError) as error:
        BitSpec.parse(text)
    assert str(error.value) == message
