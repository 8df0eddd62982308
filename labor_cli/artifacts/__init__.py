"""The HDF5 artifacts: common provenance, atomic writes, checked reads, weights without pickle.

One idea per module; everything is re-exported here, so ``artifacts.X`` reads the same
everywhere:

- :mod:`.provenance`: the kinds and schema versions, provenance attributes, atomic writes
  (:func:`create_artifact`), checked reads (:func:`open_artifact`, :func:`read_any`), image ids;
- :mod:`.tensor_tree`: trees of tensors (state dicts, optimiser states) as plain HDF5;
- :mod:`.checkpoint`: networks and training state;
- :mod:`.pixel_sets`: selections and labels;
- :mod:`.masks`: what extraction leaves for selection.

The layout of each kind is in docs/artifacts.md.
"""

from labor_cli.artifacts.checkpoint import Checkpoint, TrainingState, load_checkpoint, write_checkpoint
from labor_cli.artifacts.masks import (
    MASK_DTYPES,
    MASK_GROUPS,
    GzipChunkStream,
    Masks,
    MasksWriter,
    compression_threads,
    unpack_mask,
)
from labor_cli.artifacts.pixel_sets import PixelSet, read_pixel_set, write_pixel_set
from labor_cli.artifacts.provenance import (
    SCHEMA_VERSIONS,
    Artifact,
    KeepPartial,
    Parent,
    a_kind,
    check_declared_size,
    check_output_path,
    command_line,
    create_artifact,
    lock_path_for,
    open_artifact,
    output_lock,
    read_any,
    read_image_ids,
    resume_path_for,
    write_image_ids,
)
from labor_cli.artifacts.tensor_tree import (
    TORCH_DTYPE_ATTR,
    read_state_dict,
    read_tree,
    write_state_dict,
    write_tree,
)

__all__ = [
    "MASK_DTYPES",
    "MASK_GROUPS",
    "SCHEMA_VERSIONS",
    "TORCH_DTYPE_ATTR",
    "Artifact",
    "Checkpoint",
    "GzipChunkStream",
    "KeepPartial",
    "Masks",
    "MasksWriter",
    "Parent",
    "PixelSet",
    "TrainingState",
    "check_declared_size",
    "a_kind",
    "check_output_path",
    "command_line",
    "compression_threads",
    "create_artifact",
    "load_checkpoint",
    "lock_path_for",
    "open_artifact",
    "output_lock",
    "read_any",
    "read_image_ids",
    "read_pixel_set",
    "read_state_dict",
    "read_tree",
    "resume_path_for",
    "unpack_mask",
    "write_checkpoint",
    "write_image_ids",
    "write_pixel_set",
    "write_state_dict",
    "write_tree",
]
