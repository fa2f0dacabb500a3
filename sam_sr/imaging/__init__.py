"""Image and mask files: reading any format users bring (:mod:`.read`), writing outputs atomically
and losslessly (:mod:`.write`), and checking a run's output paths before it starts (:mod:`.outputs`)."""
from .outputs import check_output_folder, check_output_path, check_outputs, folder_outputs
from .read import (
    IMAGE_EXTS,
    check_aspect,
    list_images,
    mask_to_float,
    read_image,
    read_label_map,
    read_mask,
    to_rgb_uint8,
)
from .write import MASK_FORMATS, atomic_write_bytes, encode_image, mask_format, write_mask, write_png

__all__ = ["IMAGE_EXTS", "MASK_FORMATS", "atomic_write_bytes", "check_aspect", "check_output_folder",
           "check_output_path", "check_outputs", "encode_image", "folder_outputs", "list_images", "mask_format",
           "mask_to_float", "read_image", "read_label_map", "read_mask", "to_rgb_uint8", "write_mask", "write_png"]
