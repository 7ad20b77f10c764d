"""``comfy_api.latest.ui`` of ComfyUI 0.3.75, the part the pack uses: a node's preview images.

The real ``PreviewImage`` saves PNGs into the temp folder and returns their names to the
frontend; the double keeps the tensor so tests can look at what would be shown.
"""

from __future__ import annotations

from typing import Any


class PreviewImage:
    def __init__(self, image: Any, animated: bool = False, cls: Any = None, **kwargs: Any) -> None:
        if getattr(image, "ndim", 0) != 4 or image.shape[-1] != 3:
            raise ValueError(f"PreviewImage takes an IMAGE [B, H, W, 3], got {getattr(image, 'shape', type(image))}")
        self.image, self.animated = image, animated

    def as_dict(self) -> dict:
        return {"images": [f"preview_{i}.png" for i in range(self.image.shape[0])], "animated": (self.animated,)}
