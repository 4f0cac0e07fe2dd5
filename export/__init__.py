"""Training and export pipeline: corpus -> PyTorch model -> ONNX model directory (imports torch)."""
