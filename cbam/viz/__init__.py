"""Seeing what the networks attend to: Grad-CAM (paper Fig. 5), CBAM's attention maps, localisation scores."""
from .attention_maps import AttentionMaps, attention_maps, cbam_modules
from .figures import CamColumn, attention_figure, gradcam_figure, overlay, save_figure
from .gradcam import CamResult, gradcam, target_layer
from .localization import box_area_share, box_masks, energy_in_box, mean_ci, pointing_game

__all__ = [
    "AttentionMaps",
    "CamColumn",
    "CamResult",
    "attention_figure",
    "attention_maps",
    "box_area_share",
    "box_masks",
    "cbam_modules",
    "energy_in_box",
    "gradcam",
    "gradcam_figure",
    "mean_ci",
    "overlay",
    "pointing_game",
    "save_figure",
    "target_layer",
]
