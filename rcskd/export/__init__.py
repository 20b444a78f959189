"""Deployment formats: ONNX (checked against PyTorch with onnxruntime) and TorchScript."""
