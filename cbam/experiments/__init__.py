"""The paper's experiments as functions: training recipes, classification, comparison tables."""
from .config import TrainConfig, list_configs, load_config, save_config

__all__ = ["TrainConfig", "list_configs", "load_config", "save_config"]
