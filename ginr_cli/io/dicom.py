"""DICOM series in: the slices of a scan, as scanners write them, read as one `Volume` (pydicom).

A folder may hold several series, in any file order and with any file names; `find_series` groups its
DICOM files by Series Instance UID, and `read_series` reads one:
- slices (single-frame files, or the frames of enhanced multi-frame files) are ordered by their Image
  Position (Patient) along the normal of Image Orientation (Patient);
- the voxel grid is (column, row, slice), as NIfTI converters (dcm2niix, nibabel) lay it out, and its
  affine maps it to RAS+ world millimetres: DICOM's patient frame is LPS+, so x and y change sign;
- Rescale Slope and Intercept are applied to every slice (CT in Hounsfield units); the values are kept as
  integers (int16, uint16 or int32) when every slope is 1 and every intercept whole, else float32.
Refused with one line naming the series: slices of different sizes, orientations or pixel spacings, two
slices at one position (echoes or time points mixed in one series), uneven slice spacing (a missing slice),
Siemens mosaics, colour images, and multi-frame files without per-frame positions. Files that hold no image
(reports, presentation states) are named by `find_series` as problems of their own; a DICOMDIR is skipped.
The volume is written as NIfTI: the outputs of a series are `.nii.gz` files.
"""

from __future__ import annotations

import re
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ginr_cli.errors import GinrError

MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR: an index of a disc's files, not an image
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
ORIENTATION_TOLERANCE = 1e-4  # direction cosines
SPACING_TOLERANCE = 0.01  # relative: slice gaps, pixel spacings


@dataclass(frozen=True)
class Series:
    """One series' files in one folder. As a path (`os.fspath`) it is its folder, which messages name."""

    folder: Path
    uid: str
    number: int | None
    description: str
    files: tuple[Path, ...]

    @property
    def name(self) -> str:
        """A file name for its outputs: series number and description, as dcm2niix names them."""
        words = re.sub(r"[^A-Za-z0-9.+-]+", "_", self.description).strip("_.")[:64]
        parts = [str(self.number) if self.number is not None else "", words]
        return "_".join(p for p in parts if p) or "series_" + self.uid.rsplit(".", 1)[-1][:16]

    def __fspath__(self) -> str:
        return str(self.folder)

    @property
    def bytes(self) -> int:
        """The size of its files on disk."""
        return sum(p.stat().st_size for p in self.files)

    @property
    def label(self) -> str:
        """How messages name it within its folder: "series 3 't1_mprage'"."""
        label = f"series {self.number}" if self.number is not None else f"series {self.uid}"
        return label + (f" {self.description!r}" if self.description else "")

    def error(self, problem: str) -> GinrError:
        """A failure of this series, named by its folder and label."""
        return GinrError(f"{self.label}: {problem}", self.folder)


def is_dicom_file(path: str | Path) -> bool:
    """A DICOM Part 10 file: the 'DICM' mark after the 128-byte preamble, whatever the file's name."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def _pydicom():
    try:
        import pydicom
    except ImportError as err:  # a dependency; a broken install should still say what is missing
        raise GinrError("reading DICOM needs pydicom: pip install pydicom") from err
    return pydicom


def find_series(files: list[Path]) -> tuple[list[Series], list[tuple[Path, str]]]:
    """Group DICOM files into series (one folder's files in, per folder). Returns the series, sorted by
    number, and the files that are not part of any, each with why."""
    pydicom = _pydicom()
    groups: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    headers: dict[tuple[Path, str], object] = {}
    problems = []
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as err:
            problems.append((path, f"cannot read DICOM: {_one_line(err)}"))
            continue
        if str(ds.file_meta.get("MediaStorageSOPClassUID", "")) == MEDIA_DIRECTORY:
            continue
        if "Rows" not in ds or "Columns" not in ds:
            modality = ds.get("Modality", "")
            problems.append((path, f"a DICOM object without an image{f' ({modality})' if modality else ''}"))
            continue
        key = (path.parent, str(ds.get("SeriesInstanceUID", "")))
        groups[key].append(path)
        headers.setdefault(key, ds)
    series = []
    for (folder, uid), paths in groups.items():
        ds = headers[(folder, uid)]
        number = ds.get("SeriesNumber")
        number = int(number) if number not in (None, "") else None
        description = str(ds.get("SeriesDescription", "") or ds.get("ProtocolName", ""))
        series.append(Series(folder, uid, number, description, tuple(sorted(paths))))
    series.sort(key=lambda s: (str(s.folder), s.number if s.number is not None else -1, s.uid))
    return series, problems


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


@dataclass
class _Slice:
    position: np.ndarray  # (3,) LPS mm, the first voxel's centre
    orientation: np.ndarray  # (6,) row and column direction cosines
    spacing: tuple[float, float]  # between rows, between columns (mm)
    thickness: float | None
    pixels: np.ndarray  # (rows, columns), rescaled
    whole: bool  # values are integers (slope 1, whole intercept)


def _float(ds, name: str, default=None):
    value = ds.get(name, None)
    return default if value in (None, "") else float(value)


def _slices_of(ds, path: Path) -> list[_Slice]:
    """The slices one file holds: one, or every frame of a multi-frame file."""
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise GinrError("colour DICOM images are not volumes ginr reads (one sample a pixel)", path)
    if "MOSAIC" in [str(v).upper() for v in ds.get("ImageType", [])]:
        raise GinrError(
            "a Siemens mosaic: convert it with dcm2niix first (ginr does not unpack mosaics)", path
        )
    try:
        pixels = ds.pixel_array
    except Exception as err:
        raise GinrError(f"cannot decode the pixel data: {_one_line(err)}", path) from err
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames == 1:
        position, orientation = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
        spacing = ds.get("PixelSpacing")
        if position is None or orientation is None or spacing is None:
            raise GinrError(
                "no Image Position/Orientation (Patient) or Pixel Spacing: the geometry is unknown", path
            )
        slope, inter = _float(ds, "RescaleSlope", 1.0), _float(ds, "RescaleIntercept", 0.0)
        return [_slice(position, orientation, spacing, _float(ds, "SliceThickness"), pixels, slope, inter)]
    shared = ds.get("SharedFunctionalGroupsSequence", [None])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None or len(per_frame) != frames:
        raise GinrError("a multi-frame file without per-frame plane positions: the geometry is unknown", path)
    out = []
    for frame, groups in zip(pixels.reshape(frames, *pixels.shape[-2:]), per_frame, strict=True):

        def item(name: str, groups=groups):
            for source in (groups, shared):
                if source is not None and name in source:
                    return source[name][0]
            return None

        position, orientation, measures = (
            item("PlanePositionSequence"),
            item("PlaneOrientationSequence"),
            item("PixelMeasuresSequence"),
        )
        if position is None or orientation is None or measures is None:
            raise GinrError("a frame without plane position, orientation or pixel spacing", path)
        rescale = item("PixelValueTransformationSequence") or ds
        out.append(
            _slice(
                position.ImagePositionPatient,
                orientation.ImageOrientationPatient,
                measures.PixelSpacing,
                _float(measures, "SliceThickness"),
                frame,
                _float(rescale, "RescaleSlope", 1.0),
                _float(rescale, "RescaleIntercept", 0.0),
            )
        )
    return out


def _slice(position, orientation, spacing, thickness, pixels, slope, inter) -> _Slice:
    whole = slope == 1.0 and float(inter).is_integer()
    values = pixels.astype(np.int64 if whole else np.float64) * (1 if whole else slope) + (
        int(inter) if whole else inter
    )
    return _Slice(
        np.asarray([float(v) for v in position]),
        np.asarray([float(v) for v in orientation]),
        (float(spacing[0]), float(spacing[1])),
        thickness,
        values,
        whole,
    )


def read_series(series: Series) -> object:
    """The series as a `volumes.Volume` (kind 'nifti': it is written as NIfTI). GinrError naming the
    series for everything that keeps it from being one regular grid."""
    from ginr_cli.io.volumes import Volume

    pydicom = _pydicom()
    slices: list[_Slice] = []
    for path in series.files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom warns about harmless deviations from the standard
                ds = pydicom.dcmread(path)
        except Exception as err:
            raise series.error(f"cannot read {path.name}: {_one_line(err)}") from err
        try:
            slices.extend(_slices_of(ds, path))
        except GinrError as err:
            raise series.error(f"{path.name}: {err.message}") from None
    first = slices[0]
    if any(s.pixels.shape != first.pixels.shape for s in slices):
        raise series.error("slices of different sizes in one series")
    if any(np.abs(s.orientation - first.orientation).max() > ORIENTATION_TOLERANCE for s in slices):
        raise series.error("slices of different orientations in one series (a localizer?)")
    if any(not np.allclose(s.spacing, first.spacing, rtol=SPACING_TOLERANCE) for s in slices):
        raise series.error("slices with different pixel spacings in one series")
    row, col = first.orientation[:3], first.orientation[3:]
    normal = np.cross(row, col)
    depth = np.array([s.position @ normal for s in slices])
    order = np.argsort(depth, kind="stable")
    slices, depth = [slices[i] for i in order], depth[order]
    first = slices[0]
    gaps = np.diff(depth)
    if len(gaps) and gaps.min() < 1e-3 * max(1.0, abs(gaps).max()):
        raise series.error(
            "several slices at one position (echoes, time points or repeats in one series): not one volume"
        )
    step = float(np.median(gaps)) if len(gaps) else (first.thickness or 1.0)
    uneven = np.abs(gaps - step) > SPACING_TOLERANCE * step
    if uneven.any():
        i = int(np.argmax(uneven))
        raise series.error(
            f"uneven slice spacing: {gaps[i]:.3g} mm between slices {i + 1} and {i + 2} where the others are "
            f"{step:.3g} mm apart (a missing slice?)"
        )
    # (column, row, slice) -> LPS: columns advance along the row direction, rows along the column direction.
    lps = np.eye(4)
    lps[:3, 0] = row * first.spacing[1]
    lps[:3, 1] = col * first.spacing[0]
    lps[:3, 2] = (
        (slices[-1].position - first.position) / (len(slices) - 1) if len(slices) > 1 else normal * step
    )
    lps[:3, 3] = first.position
    affine = LPS_TO_RAS @ lps
    data = np.stack([s.pixels.T for s in slices], axis=-1)  # (columns, rows, slices)
    dtype = _dtype(data) if all(s.whole for s in slices) else np.dtype(np.float32)
    spacing = (first.spacing[1], first.spacing[0], float(np.linalg.norm(lps[:3, 2])))
    return Volume(
        data=data[None].astype(np.float32),
        kind="nifti",
        dtype=dtype,
        spacing=spacing,
        unit="mm",
        affine=affine,
        axes="XYZ",
        path=series.folder,
        header=_header(data.shape, dtype, affine, series.description),
        sform_code=1,  # scanner anatomical coordinates
        qform_code=1 if _is_rigid(affine) else 0,
    )


def _dtype(data: np.ndarray) -> np.dtype:
    lo, hi = int(data.min()), int(data.max())
    for dtype in (np.int16, np.uint16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dtype)
    return np.dtype(np.float32)


def _is_rigid(affine: np.ndarray) -> bool:
    """No shear (a gantry tilt gives one): the qform, a rotation and voxel sizes, can hold it."""
    axes = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    return bool(np.allclose(axes.T @ axes, np.eye(3), atol=1e-5))


def _header(shape, dtype: np.dtype, affine: np.ndarray, description: str):
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_xyzt_units("mm")
    header.set_sform(affine, code=1)
    header.set_qform(affine, code=1 if _is_rigid(affine) else 0)
    header["descrip"] = description.encode("ascii", "replace")[:79]
    return header
