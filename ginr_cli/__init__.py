"""ginr: batch image upscaling and 3D volume reconstruction with Mamba-GINR."""

__version__ = "0.1.0"
