"""Seeing what the networks attend to: Grad-CAM (paper Fig. 5), CBAM's attention maps, localisation scores."""
from .attention_maps import AttentionMaps, attention_maps, cbam_modules
from .figures import CamColumn, attention_figure, gradcam_figure, overlay, save_figure
from .gradcam import CamResult, gradcam, target_layer
from .images import image_files, load_image, sample_images, to_display
from .loading import VizModel, load_viz_model
from .localization import (
    box_area_share,
    box_masks,
    compare_extra,
    dataset_boxes,
    energy_in_box,
    format_markdown,
    localization_row,
    localization_scores,
    localization_stage,
    localization_table,
    mean_ci,
    pointing_game,
    write_table,
)

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
    "format_markdown",
    "gradcam",
    "gradcam_figure",
    "image_files",
    "load_image",
    "localization_row",
    "localization_stage",
    "localization_table",
    "compare_extra",
    "dataset_boxes",
    "localization_scores",
    "mean_ci",
    "overlay",
    "pointing_game",
    "to_display",
    "VizModel",
    "load_viz_model",
    "sample_images",
    "save_figure",
    "target_layer",
    "write_table",
]
