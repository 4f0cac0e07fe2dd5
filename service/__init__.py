"""The English->Polish translation service: onnxruntime decoding behind a Litestar app. Never imports torch."""
__version__ = "0.1.0"
