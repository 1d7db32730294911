"""Image analysis and resizing with OpenCV: sharpness, colour statistics, similarity, exact sizing."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

FitPolicy = Literal["cover", "contain", "stretch"]


def fit_to_size(rgb: np.ndarray, width: int, height: int, policy: FitPolicy = "cover") -> np.ndarray:
    """Exactly width x height.

    cover: scale to fill, centre-crop the overflow (no bars; the default, since an image-to-video
    model treats bars as content and keeps them). contain: scale to fit, pad with black.
    stretch: ignore the aspect ratio.
    """
    src_h, src_w = rgb.shape[:2]
    if (src_w, src_h) == (width, height):
        return rgb
    if policy == "stretch":
        return _resize(rgb, width, height)
    if policy == "cover":
        scale = max(width / src_w, height / src_h)
        new_w, new_h = max(width, round(src_w * scale)), max(height, round(src_h * scale))
        resized = _resize(rgb, new_w, new_h)
        top, left = (new_h - height) // 2, (new_w - width) // 2
        return np.ascontiguousarray(resized[top : top + height, left : left + width])
    scale = min(width / src_w, height / src_h)
    new_w, new_h = min(width, max(1, round(src_w * scale))), min(height, max(1, round(src_h * scale)))
    canvas = np.zeros((height, width, 3), dtype=rgb.dtype)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = _resize(rgb, new_w, new_h)
    return canvas


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    shrinking = width * height < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the luma: high for crisp frames, near zero for blurred or flat ones."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def mean_luma(rgb: np.ndarray) -> float:
    return float(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).mean())


def lab_stats(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation in CIE Lab (float, L in 0-100)."""
    return _mean_std(cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab))


def _mean_std(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # OpenCV's one pass is about 50x faster than numpy's mean and std over a 720p frame (and sums in float64).
    mean, std = cv2.meanStdDev(lab)
    return mean.ravel(), std.ravel()


def colour_delta(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between the mean Lab colours of two images (roughly a mean-colour Delta E)."""
    return float(np.linalg.norm(lab_stats(a)[0] - lab_stats(b)[0]))


def match_colour(rgb: np.ndarray, target_mean: np.ndarray, target_std: np.ndarray) -> np.ndarray:
    """Shift the image's Lab statistics onto a target's (Reinhard colour transfer)."""
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    mean, std = _mean_std(lab)
    scale = np.asarray(target_std) / np.maximum(std, 1e-6)
    lab = (lab - mean.astype(np.float32)) * scale.astype(np.float32) + np.asarray(target_mean, dtype=np.float32)
    lab[..., 0] = np.clip(lab[..., 0], 0, 100)
    out = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical images)."""
    return float(cv2.PSNR(a, b))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity of the luma planes (Wang et al. 2004, Gaussian window)."""
    x = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float64)
    y = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(image, (11, 11), 1.5)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(index.mean())


def encode_png(rgb: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV only fails on invalid arrays
        raise ValueError("PNG encoding failed")
    return buffer.tobytes()


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    """JPEG bytes: a fraction of a PNG's size for natural frames shown as thumbnails on a page."""
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV only fails on invalid arrays
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a decodable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def image_type(data: bytes) -> str:
    """The MIME type of PNG, JPEG or WebP bytes (from their signature); anything else is refused."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise ValueError("not a PNG, JPEG or WebP image")
