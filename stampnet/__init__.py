"""stampnet: learn from the image stamps of astronomical alerts (ZTF; soon Rubin/LSST)."""

__version__ = "0.1.0"
