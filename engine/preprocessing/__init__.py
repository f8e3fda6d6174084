"""Model-input preprocessing: normalisation, CLAHE, structure/texture decomposition, resizing."""

from .clahe import clahe
from .decomposition import structure_texture, interval_gradient_smooth
from .normalize import HU_WINDOW, hu_to_unit, model_input, to_unit, uint8_to_unit, unit_to_hu
from .resize import resize_image, resize_labels

__all__ = ["HU_WINDOW", "clahe", "hu_to_unit", "interval_gradient_smooth", "model_input", "resize_image", "resize_labels",
           "structure_texture", "to_unit", "uint8_to_unit", "unit_to_hu"]
