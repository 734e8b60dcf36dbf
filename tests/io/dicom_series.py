"""Write a DICOM series from a volume with known geometry, as a scanner would lay it out: one file per
slice (or one enhanced multi-frame file), LPS patient coordinates, stored integers with a rescale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4.1"
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _dataset(sop_class: str, series_uid: str, number: int, description: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName, ds.PatientID = "MR", "Test^Phantom", "0"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4", series_uid
    ds.SeriesNumber, ds.SeriesDescription = number, description
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    return ds


def _geometry(affine: np.ndarray):
    """Row and column direction cosines, pixel spacing (rows, columns) and the slice step, in LPS."""
    lps = RAS_TO_LPS @ affine
    col_step, row_step = lps[:3, 0], lps[:3, 1]  # voxel axis 0 runs along a row (columns), axis 1 down
    orientation = [*(col_step / np.linalg.norm(col_step)), *(row_step / np.linalg.norm(row_step))]
    spacing = [float(np.linalg.norm(row_step)), float(np.linalg.norm(col_step))]
    return lps, [float(v) for v in orientation], spacing


def write_series(
    data: np.ndarray,
    affine: np.ndarray,
    folder: Path,
    number: int = 3,
    description: str = "t1 test",
    slope: float = 1.0,
    inter: float = 0.0,
    skip: tuple[int, ...] = (),
    multiframe: bool = False,
    seed: int = 0,
) -> list[Path]:
    """`data` (x, y, z) with its RAS `affine` as slices along z, stored as int16 `(value - inter) / slope`,
    in shuffled files with meaningless names (`skip`: slices left out). Returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    lps, orientation, spacing = _geometry(affine)
    stored = np.rint((data - inter) / slope).astype(np.int16)
    series_uid = generate_uid()
    keep = [k for k in range(data.shape[2]) if k not in skip]
    position = [[float(v) for v in (lps @ np.array([0, 0, k, 1.0]))[:3]] for k in keep]
    if multiframe:
        ds = _dataset(ENHANCED_MR_IMAGE, series_uid, number, description)
        ds.Rows, ds.Columns, ds.NumberOfFrames = data.shape[1], data.shape[0], len(keep)
        shared = Dataset()
        plane, measures, rescale = Dataset(), Dataset(), Dataset()
        plane.ImageOrientationPatient = orientation
        measures.PixelSpacing = spacing
        measures.SliceThickness = float(np.linalg.norm(lps[:3, 2]))
        rescale.RescaleSlope, rescale.RescaleIntercept, rescale.RescaleType = slope, inter, "US"
        shared.PlaneOrientationSequence = Sequence([plane])
        shared.PixelMeasuresSequence = Sequence([measures])
        shared.PixelValueTransformationSequence = Sequence([rescale])
        ds.SharedFunctionalGroupsSequence = Sequence([shared])
        frames = []
        for p in position:
            item, where = Dataset(), Dataset()
            where.ImagePositionPatient = p
            item.PlanePositionSequence = Sequence([where])
            frames.append(item)
        ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
        ds.PixelData = np.ascontiguousarray(stored[:, :, keep].transpose(2, 1, 0)).tobytes()
        path = folder / f"IM{number}_MULTI"
        ds.save_as(path, enforce_file_format=True)
        return [path]
    paths = []
    order = np.random.default_rng(seed).permutation(len(keep))  # files in no particular order
    for n, i in enumerate(order):
        k = keep[i]
        ds = _dataset(MR_IMAGE, series_uid, number, description)
        ds.Rows, ds.Columns = data.shape[1], data.shape[0]
        ds.ImagePositionPatient, ds.ImageOrientationPatient = position[i], orientation
        ds.PixelSpacing, ds.SliceThickness = spacing, float(np.linalg.norm(lps[:3, 2]))
        ds.RescaleSlope, ds.RescaleIntercept = slope, inter
        ds.InstanceNumber = k + 1
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        path = folder / f"IM{number}_{n:04d}"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_report(path: Path) -> Path:
    """A DICOM object without an image (a structured report), as archives hold beside the scans."""
    ds = _dataset("1.2.840.10008.5.1.4.1.1.88.11", generate_uid(), 99, "report")
    for name in ("SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated", "BitsStored"):
        delattr(ds, name)
    del ds.HighBit, ds.PixelRepresentation
    ds.Modality = "SR"
    ds.save_as(path, enforce_file_format=True)
    return path


def oblique(affine: np.ndarray, degrees: float = 17.0) -> np.ndarray:
    """`affine` rotated about the world's x then z axes: slices that are not axis-aligned."""
    a = np.deg2rad(degrees)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    out = affine.copy()
    out[:3] = (rz @ rx) @ affine[:3]
    return out
