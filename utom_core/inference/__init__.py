"""Inference: images of any size through a trained generator, tile by tile, streamed.

``tiling`` cuts and stitches, ``planes`` predicts one 2D plane, ``volumes`` walks an image's
planes, ``predictor`` is the one prediction path every caller takes (``Predictor``), ``files``
turns a file into an output file with the one output-format policy.
"""

from utom_core.inference.files import output_name, predict_file, write_prediction
from utom_core.inference.planes import Norm, PlanePredictor, TileOptions
from utom_core.inference.predictor import PredictOptions, Predictor, output_info
from utom_core.inference.volumes import predict_image

__all__ = ["Norm", "PlanePredictor", "PredictOptions", "Predictor", "TileOptions",
           "output_info", "output_name", "predict_file", "predict_image", "write_prediction"]
