"""Image decoding/normalisation and the Predictor, on real MNIST digits."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ai_platform.serving.predictor import Predictor
from lakeapi.errors import InvalidRequest, ModelNotFound
from lakekit.images import MAX_PIXELS, decode_image, normalize
from tests.lakekit.mnist_fixture import mnist_arrays

DIGITS, LABELS = mnist_arrays("test", 200)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def encode(image: Image.Image, fmt: str, **kwargs: object) -> str:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return b64(buf.getvalue())


def upscaled(digit: np.ndarray, factor: int, invert: bool = False) -> Image.Image:
    image = Image.fromarray(255 - digit if invert else digit)
    return image.resize((28 * factor, 28 * factor), Image.Resampling.BILINEAR)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height; its pixel data is garbage (never decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"garbage, not zlib")
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def predictor(model_path: str) -> Predictor:
    return Predictor(model_path)


def test_raw_bytes_are_the_pixels_as_is() -> None:
    out = decode_image(b64(DIGITS[0].tobytes()))
    assert out.shape == (28, 28) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, DIGITS[0])


def test_raw_digits_are_classified(predictor: Predictor) -> None:
    results = predictor.predict([decode_image(b64(d.tobytes())) for d in DIGITS])
    accuracy = np.mean([r["prediction"] for r in results] == LABELS)
    assert accuracy > 0.85


def test_batch_results_are_per_image_and_match_single(predictor: Predictor) -> None:
    batch = predictor.predict(list(DIGITS[:5]))
    assert len(batch) == 5
    for digit, result in zip(DIGITS[:5], batch, strict=True):
        assert set(result) == {"prediction", "confidence", "probabilities"}
        probs = result["probabilities"]
        assert len(probs) == 10 and abs(sum(probs) - 1) < 1e-4
        assert result["prediction"] == int(np.argmax(probs))
        assert result["confidence"] == max(probs)
        single = predictor.predict([digit])[0]
        assert single["prediction"] == result["prediction"]
        assert single["confidence"] == pytest.approx(result["confidence"], abs=1e-5)
    assert predictor.predict([]) == []


def agreement(predictor: Predictor, payloads: list[str]) -> float:
    """Share of digits whose encoded form is classified like the raw digit."""
    raw = [r["prediction"] for r in predictor.predict(list(DIGITS[: len(payloads)]))]
    decoded = [r["prediction"] for r in predictor.predict([decode_image(p) for p in payloads])]
    return float(np.mean(np.array(raw) == np.array(decoded)))


def test_png_of_another_size_is_normalised_like_mnist(predictor: Predictor) -> None:
    out = decode_image(encode(upscaled(DIGITS[0], 5), "PNG"))  # 140x140
    assert out.shape == (28, 28) and out.dtype == np.uint8
    # MNIST digits are already normalised, so the round trip lands close to the original.
    assert np.corrcoef(out.ravel(), DIGITS[0].ravel())[0, 1] > 0.9
    payloads = [encode(upscaled(d, 3), "PNG") for d in DIGITS[:50]]
    assert agreement(predictor, payloads) >= 0.9


def test_jpeg(predictor: Predictor) -> None:
    payloads = [encode(upscaled(d, 2).convert("RGB"), "JPEG", quality=90) for d in DIGITS[:50]]
    assert agreement(predictor, payloads) >= 0.9


def test_dark_ink_on_light_paper_is_inverted() -> None:
    light = decode_image(encode(upscaled(DIGITS[3], 4, invert=True), "PNG"))
    dark = decode_image(encode(upscaled(DIGITS[3], 4), "PNG"))
    # Equal up to the rounding of the resize.
    assert np.abs(light.astype(int) - dark.astype(int)).max() <= 1
    assert light.mean() < 60  # white digit on black, as MNIST


def test_transparent_background_counts_as_paper() -> None:
    ink = np.asarray(upscaled(DIGITS[5], 3))
    rgba = np.zeros((*ink.shape, 4), dtype=np.uint8)  # black strokes, alpha = ink
    rgba[..., 3] = ink
    out = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    reference = decode_image(encode(Image.fromarray(ink), "PNG"))
    assert np.corrcoef(out.ravel(), reference.ravel())[0, 1] > 0.95


def test_digit_off_centre_is_recentred() -> None:
    canvas = np.zeros((100, 60), dtype=np.uint8)
    canvas[5:33, 2:30] = DIGITS[7]  # top-left corner of a tall canvas
    out = decode_image(encode(Image.fromarray(canvas), "PNG"))
    rows, cols = np.nonzero(out)
    # The ink fits a 20x20 box ...
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 == 20
    # ... whose centre of mass is the field's, as in MNIST.
    mass = out.astype(float)
    cy = (mass.sum(1) @ np.arange(28)) / mass.sum()
    cx = (mass.sum(0) @ np.arange(28)) / mass.sum()
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5


def test_blank_image_is_predicted_not_refused(predictor: Predictor) -> None:
    out = decode_image(encode(Image.new("L", (50, 50), 255), "PNG"))
    np.testing.assert_array_equal(out, np.zeros((28, 28), np.uint8))
    assert len(predictor.predict([out])[0]["probabilities"]) == 10
    np.testing.assert_array_equal(normalize(np.full((5, 9), 30.0)), np.zeros((28, 28)))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("", "empty"),
        ("not base64!", "not valid base64"),
        ("QUJD=", "not valid base64"),  # excess padding
        ("QR==", "not valid base64"),  # non-zero padding bits
        ("QQ==QUJD", "not valid base64"),  # data after padding
        (b64(b""), "empty"),
        (b64(b"hello world, not an image" * 4), "neither 784 raw pixels"),
        (b64(bytes(783)), "783 bytes"),
        (b64(bytes(785)), "785 bytes"),
        (b64(b"\x89PNG\r\n\x1a\n" + b"\0" * 40), "cannot be decoded"),
        (b64(b"GIF89a" + bytes(100)), "neither"),
    ],
)
def test_bad_payloads_are_invalid_requests(payload: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        decode_image(payload)


def test_truncated_png_is_an_invalid_request() -> None:
    data = base64.b64decode(encode(upscaled(DIGITS[0], 4), "PNG"))
    with pytest.raises(InvalidRequest, match="cannot be decoded"):
        decode_image(b64(data[: len(data) // 2]))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [4097, 10_000, 30_000])
def test_huge_dimensions_are_refused_from_the_header(side: int) -> None:
    # The pixel data is garbage: had it been decoded, the message would say so instead.
    with pytest.raises(InvalidRequest, match=r"too large|pixels; the limit") as err:
        decode_image(b64(png_claiming(side, side)))
    assert side * side > MAX_PIXELS
    assert "cannot be decoded" not in err.value.message


def test_raw_pixels_that_start_like_a_jpeg_are_still_raw() -> None:
    pixels = bytes([0xFF, 0xD8, 0xFF]) + bytes(781)
    np.testing.assert_array_equal(decode_image(b64(pixels)).ravel()[:3], [255, 216, 255])


def test_predict_checks_its_arrays(predictor: Predictor) -> None:
    with pytest.raises(InvalidRequest, match="28x28"):
        predictor.predict([np.zeros((28, 27), np.uint8)])
    with pytest.raises(InvalidRequest, match="uint8"):
        predictor.predict([np.zeros((28, 28), np.float32)])


def test_missing_model(tmp_path: object) -> None:
    with pytest.raises(ModelNotFound):
        Predictor(f"{tmp_path}/nope.lance")
