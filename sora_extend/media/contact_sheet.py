"""A contact sheet: the first and last frame of every segment, labelled, in one PNG."""

from __future__ import annotations

import cv2
import numpy as np

from sora_extend.media.images import fit_to_size

LABEL_HEIGHT = 22


def _tile(rgb: np.ndarray, label: str, width: int) -> np.ndarray:
    height = max(2, round(rgb.shape[0] * width / rgb.shape[1]))
    tile = np.zeros((height + LABEL_HEIGHT, width, 3), dtype=np.uint8)
    tile[LABEL_HEIGHT:] = fit_to_size(rgb, width, height, "stretch")
    cv2.putText(tile, label, (6, LABEL_HEIGHT - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (235, 235, 235), 1, cv2.LINE_AA)
    return tile


def contact_sheet(pairs: list[tuple[np.ndarray, np.ndarray]], thumb_width: int = 256, per_row: int = 4) -> np.ndarray:
    """Rows of `per_row` segments, each shown as [first | last]."""
    if not pairs:
        raise ValueError("a contact sheet needs at least one segment")
    tiles = []
    for index, (first, last) in enumerate(pairs, start=1):
        tiles.append(
            np.hstack([_tile(first, f"{index:02d} first", thumb_width), _tile(last, f"{index:02d} last", thumb_width)])
        )
    height = max(tile.shape[0] for tile in tiles)
    gap = 6
    cell_width = tiles[0].shape[1] + gap
    rows = (len(tiles) + per_row - 1) // per_row
    columns = min(per_row, len(tiles))
    sheet = np.full((rows * (height + gap), columns * cell_width, 3), 24, dtype=np.uint8)
    for position, tile in enumerate(tiles):
        row, column = divmod(position, per_row)
        top, left = row * (height + gap), column * cell_width
        sheet[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    return sheet
