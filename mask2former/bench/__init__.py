"""``mask2former benchmark``: what a model costs in each runtime and precision, measured side by
side in one run (``table``), where the time goes in PyTorch (``stages``), and against the HF port
(``vs_hf``)."""
