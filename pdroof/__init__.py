"""pdroof: closed-form roofline planning for heterogeneous prefill/decode LLM serving."""

__version__ = "0.1.0"
