"""Files: reading images, atomic writes, checkpoints, weights with metadata, figures.

- :mod:`.images`: the one image reader every command uses (``.npy``, ``.npz``, FITS, PNG/JPEG,
  safetensors, folders and ``gangal simulate`` output).
- :mod:`.tables`: parameter tables as CSV, ECSV and FITS, with units.
- :mod:`.fits_headers`: the provenance cards of every FITS file gangal writes.
- :mod:`.writers`: the one image-file writer (``.npy``, ``.npz``, FITS), used by every command
  whose ``--out`` is a file.
- :mod:`.atomic`: a file either does not exist yet or is complete.
- :mod:`.checkpoint`: training state in safetensors plus JSON, never pickle.
- :mod:`.weights`: network weights checked against the network their metadata describes.
- :mod:`.plots`: matplotlib off-screen, PNGs written atomically, contact sheets.
"""

from .images import IMAGE_SUFFIXES, MANIFEST_NAME, describe_supported, read_images, read_simulation_folder
from .writers import write_image_file

__all__ = [
    "IMAGE_SUFFIXES",
    "MANIFEST_NAME",
    "describe_supported",
    "read_images",
    "read_simulation_folder",
    "write_image_file",
]
