"""The :class:`Predictor`: a scan in, the AI reading of it out.

Flow of :meth:`Predictor.iter_predict`
--------------------------------------
1. Models are resolved from :mod:`engine.models.registry` once per predictor (the
   segmentation model is required; the finding, COVID and lung models are used when
   present, and ``False`` turns one off).
2. The first slice of the order (the visible one) is segmented alone, on the whole
   slice, and yielded: the user sees it after one pass (step 4 reads it again).
3. The scan's one :class:`~engine.anatomy.LungMasks` (unless the caller gives them) is
   found on the host: on a thread of :mod:`.background` while step 4 runs where that pays.
   :func:`engine.inference.roi.find_roi` picks the slices that hold lung and a torso box
   per slice; the other slices stay background and are not sent to the model.
4. Those slices go through in slabs of ``batch_size`` consecutive ones, the same for any
   order or visible slice (:func:`.order.fixed_slabs`; a slice read alone in step 2 is
   read again in its slab, or forgotten outside them): normalised (HU window or
   /255), resized to the model's input size once (the finding classifier and the lung
   model reuse it), cropped to the slab's torso box (snapped to the model's multiple, so
   the lungs keep the scale the model was trained at), segmented. Softmax runs on the
   model-size crop; the class probabilities are resized (bilinear) to the slice size once
   and the label is their argmax (labels taken at model size and upsampled by nearest
   neighbour changed whole regions after the presence threshold, docs/MODELS.md);
   :mod:`.postprocess` does that full-size work only inside the crop's window (the same
   bytes). Each finished slab is yielded as a :class:`Slab`.
5. The anatomy rules (:mod:`.gate`, :mod:`.vessels`, :mod:`.nodules`) keep findings only
   where they can be, using the lungs of step 3; each rule's removals are counted.
6. Presence (:mod:`.presence`): calibrated per-slice probabilities from the segmentation's
   own evidence; a finding is removed from slices whose probability is 0.5 or less (bar
   and overlay agree); the whole-scan probability combines the remaining regions.
7. The COVID likelihood; the complete :class:`Prediction` is the generator's return value.

Before any model runs, :func:`.assess.input_problems` refuses inputs the models cannot
read (unknown intensity scale, tiny or non-axial images); a scan without lung is refused
once the lung search ends (no further slab is segmented). Such a prediction is "not
assessed": empty labels, no probabilities, :attr:`Prediction.not_assessed` says why.

Cancelling (``cancel.is_set()``) is checked before every forward pass and by the lung
search: the work stops within one batch and raises :class:`~engine.errors.CancelledError`;
nothing outside the generator has been changed (delivered slabs are the caller's to
discard). A CUDA out-of-memory error halves the batch and retries the same slices.
"""

from __future__ import annotations

import logging
import time
import warnings
from contextlib import closing
from typing import Callable, Generator, Optional, Sequence

import numpy as np
import torch

from ..anatomy.lungs import LungMasks, lung_masks, narrow_window, unite_lung_model
from ..errors import DataError, ModelError
from ..labels import FINDING_KEYS, FINDINGS
from ..progress import CancelLike, ProgressCallback, as_progress, check_cancel
from ..types import Volume
from . import nets as N
from . import postprocess as P
from . import runtime as R
from .order import OrderSpec, fixed_slabs, slabs, slice_order
from .assess import NO_LUNG, input_problems
from .background import BackgroundJob, Pending, find_lungs
from .gate import lung_gate
from .nodules import RULE as NODULE_RULE, set_aside_nodules
from .vessels import RULE as VESSEL_RULE, remove_vessels
from .presence import PresenceModel, load_for as load_presence, read_evidence, scan_probabilities as presence_scan
from .result import Prediction, Slab, covid_slices
from .roi import LungROI, find_roi

log = logging.getLogger(__name__)

SlabCallback = Callable[[np.ndarray, np.ndarray, Optional[np.ndarray]], None]
#: slices per ONNX Runtime forward pass inside a slab (same crop): a quarter of the activation memory
#: of 8 at the same CPU time per slice, the same logits bit for bit (tested)
ONNX_FORWARD_SLICES = 2


class Predictor:
    """Segment a scan's findings and estimate how likely each finding is.

    Parameters
    ----------
    model_name
        Segmentation model: registry name, a loaded model, or ``None`` for the default.
    device
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    findings_model
        Finding classifier (seed 004 stage 2): runs only when named; its per-slice output is
        kept as :attr:`Prediction.classifier_probabilities` for research and is not the
        finding probability (the segmentation's own evidence ranks slices better, see
        docs/MODELS.md).
    covid_model
        COVID classifier: registry name, loaded model, ``None`` (the registry default when
        its weights are installed) or ``False`` (none).
    lung_model
        Lung model (``None``: the registry default when installed; ``False``: none). Run on
        8-bit lung-window images only, where the reading's lungs are the intensity rules
        united with its mask :attr:`Prediction.lung_mask` (lung Dice 0.958, 0.936 without);
        elsewhere the rules alone measure better (docs/MODELS.md).
    batch_size
        Slices per forward pass (halved automatically on a CUDA out-of-memory error);
        ``None``: 8 on the CPU, 32 on CUDA. A slab's slices share a torso crop: another batch
        size can change pixels at crop edges (the order cannot); ONNX Runtime passes 2 at a time.
    amp
        ``False`` runs float32 everywhere (the same as ``precision="fp32"``).
    precision
        ``"auto"`` (ONNX Runtime on the CPU when installed, else float32; bf16 on CUDA),
        ``"fp32"``, ``"bf16"`` or ``"onnx"``: see :mod:`.runtime` for what was measured.
    threads
        Torch CPU threads to use (``None`` leaves torch's default). The app passes one
        fewer than the cores so its GUI thread keeps one.
    lung_gate
        Find the lungs (once), apply the anatomy rules of :mod:`.gate` and the evidence
        threshold of :mod:`.presence`; a scan without lung is then "not assessed".
        ``False`` keeps the raw model output (tests, research): nothing is removed, the
        probabilities are still computed.
    restrict_to_lungs
        Segment only slices that hold lung (see :mod:`.roi`); ``None``: on the CPU only (on
        a GPU the whole scan takes less time than finding the lungs on the CPU).
    crop
        Feed the model only the torso box of each slab instead of the whole slice.
    keep_probabilities
        Keep the uint8 probability maps (236 MB for 512x512x300).
    presence
        Presence model of the finding probabilities (:mod:`.presence`); ``None`` loads the
        segmentation model's fitted file (``python -m engine calibrate``).
    """

    def __init__(self, model_name: N.ModelSpec = None, device: str = "auto", findings_model: N.ModelSpec = None,
                 covid_model: N.ModelSpec = None, lung_model: N.ModelSpec = None,
                 batch_size: Optional[int] = None, amp: bool = True, threads: Optional[int] = None,
                 precision: str = "auto",
                 restrict_to_lungs: Optional[bool] = None, lung_gate: bool = True,
                 crop: bool = True, keep_probabilities: bool = True,
                 presence: Optional[PresenceModel] = None) -> None:
        self.device = N.resolve_device(device)
        cuda = self.device.type == "cuda"
        #: the runtime asked for: "fp32", "bf16" or "onnx" (a model that cannot run in ONNX
        #: Runtime falls back to float32 torch; each Net records its own)
        self.runtime = R.choose(self.device, "fp32" if not amp else precision)
        self.amp_dtype = R.autocast_dtype(self.device, self.runtime)
        self.batch_size = max(1, int(batch_size)) if batch_size else (32 if cuda else 8)
        self.threads = threads
        self.restrict_to_lungs = (not cuda) if restrict_to_lungs is None else bool(restrict_to_lungs)
        self.crop = crop
        self.lung_gate = bool(lung_gate)
        self.keep_probabilities = keep_probabilities
        self.presence = presence
        #: run the lung model on every input (benchmarks), not only on 8-bit lung-window images
        self.lung_model_always = False
        #: find the lungs on a thread beside the networks (``None``: where that pays, :mod:`.background`)
        self.lungs_beside: Optional[bool] = None
        self._use_lung_net = False  # set per scan: the lung model runs on 8-bit lung-window images only
        self._specs = {"segmentation": model_name, "findings": findings_model or False, "covid": covid_model,
                       "lung": lung_model}
        self._nets: Optional[dict[str, Optional[N.Net]]] = None
        self._batch = self.batch_size
        self._device_volume: Optional[torch.Tensor] = None
        #: upload the whole scan to the device once and slice it there (on by default on CUDA)
        self.upload_volume = cuda
        self.load_s = 0.0
        self.oom_events = 0  # CUDA out-of-memory errors recovered from (by halving the batch)
        self._network_s = self._network_cpu_s = 0.0

    # -- models ---------------------------------------------------------------
    def load(self) -> dict[str, Optional[N.Net]]:
        """Load the models (done once; later calls return the cached ones)."""
        if self._nets is None:
            t = time.perf_counter()
            if self.device.type == "cuda":
                torch.backends.cudnn.benchmark = True  # slabs have few distinct shapes: tune once
            nets = {}
            threads = int(self.threads) if self.threads else torch.get_num_threads()
            for role, spec in self._specs.items():
                net = N.load_net(spec, role, self.device, channels_last=True, required=(role == "segmentation"))
                if net is not None:
                    net.runtime = "fp32" if self.runtime == "onnx" else self.runtime
                    if self.runtime == "onnx":
                        net.onnx = R.onnx_net(net.module, net.name, net.sha256, net.in_channels, net.input_size,
                                              threads)
                        if net.onnx is not None:
                            net.runtime = "onnx"
                nets[role] = net
            self._nets = nets
            self.load_s = time.perf_counter() - t
        return self._nets

    def models(self, lung_ran: bool = True) -> dict[str, Optional[dict]]:
        """Role -> description of the model used (``None``: no model; the lung model left out unless it ran)."""
        return {r: (n.describe() if n else None) for r, n in self.load().items() if lung_ran or r != "lung"}

    # -- public API -----------------------------------------------------------
    def predict(self, volume: Volume, progress: Optional[ProgressCallback] = None,
                cancel: Optional[CancelLike] = None, order: OrderSpec = None,
                visible_slice: Optional[int] = None, on_slab: Optional[SlabCallback] = None,
                lungs: Optional[LungMasks | Pending] = None) -> Prediction:
        """Run the whole scan and return the complete :class:`Prediction`.

        ``on_slab(z_indices, labels_slab, probabilities_slab)`` is called with each
        finished slab (see :class:`Slab`); see :meth:`iter_predict` for the rest. Raises
        ``CancelledError`` (``cancel`` was set: no prediction) or ``ModelError`` (a model is
        missing or failed).
        """
        gen = self.iter_predict(volume, progress=progress, cancel=cancel, order=order, visible_slice=visible_slice,
                                lungs=lungs)
        with closing(gen):  # an error in on_slab ends the reading (and its lung thread) at once
            while True:
                try:
                    slab = next(gen)
                except StopIteration as stop:
                    return stop.value
                if on_slab is not None:
                    on_slab(slab.z, slab.labels, slab.probabilities)

    def iter_predict(self, volume: Volume, progress: Optional[ProgressCallback] = None,
                     cancel: Optional[CancelLike] = None, order: OrderSpec = None,
                     visible_slice: Optional[int] = None,
                     lungs: Optional[LungMasks | Pending] = None) -> Generator[Slab, None, Prediction]:
        """Yield a :class:`Slab` per finished group of slices; return the :class:`Prediction`.

        Parameters
        ----------
        volume
            The scan (HU or 8-bit).
        order
            ``None`` (ascending, the visible slice first when given), ``"center_out"``
            (from ``visible_slice`` outwards) or a priority list of slice indices.
        visible_slice
            The slice the user is looking at: segmented first, alone.
        lungs
            The scan's lungs when the caller found them (the app's case), or a :class:`Pending`
            the caller's search will fill; otherwise they are found here, once.
            (Use ``pred = yield from predictor.iter_predict(...)`` or :meth:`predict`.)
        """
        jobs: list[BackgroundJob | Pending] = []  # this reading's own: a predictor reused meanwhile has others
        try:
            return (yield from self._run_scan(volume, progress, cancel, order, visible_slice, lungs, jobs))
        finally:
            self._device_volume = None  # frees the GPU copy of the scan, also on cancel or error
            for job in jobs:  # ended, failed, cancelled or dropped: no thread outlives the reading
                job.stop()

    def _run_scan(self, volume: Volume, progress: Optional[ProgressCallback], cancel: Optional[CancelLike],
                  order: OrderSpec, visible_slice: Optional[int],
                  lungs: Optional[LungMasks | Pending], jobs: list) -> Generator[Slab, None, Prediction]:
        t0 = time.perf_counter()
        report = as_progress(progress)
        report(0.0, "Loading models")
        check_cancel(cancel)
        nets = self.load()
        problems = input_problems(volume)
        if problems:  # nothing is run: no number would mean anything
            report(1.0, "Not assessed")
            return self._not_assessed(volume, problems, None, {"total_s": time.perf_counter() - t0})
        if self.threads and self.device.type == "cpu":
            torch.set_num_threads(int(self.threads))
        seg = nets["segmentation"]
        assert seg is not None
        array = volume.array
        nz, ny, nx = array.shape
        is_hu = bool(volume.is_hu)
        self._batch = self.batch_size
        self._network_s = 0.0
        self._network_cpu_s = 0.0
        if self.upload_volume:  # the scan goes to the device once (as stored: int16 / uint8)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # read-only arrays: torch only reads them
                self._device_volume = torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

        labels = np.zeros((nz, ny, nx), dtype=np.uint8)
        probs = np.zeros((nz, 3, ny, nx), dtype=np.uint8) if self.keep_probabilities else None
        slice_probs = np.zeros((nz, 3), dtype=np.float32)
        confidence = np.zeros((nz, ny, nx), dtype=np.uint8)  # model probability of each pixel's label
        segmented = np.zeros(nz, dtype=bool)
        # 8-bit lung-window images only (docs/MODELS.md)
        use_lung_net = nets["lung"] is not None and (self.lung_model_always
                                                     or (not is_hu and not narrow_window(volume)))
        self._use_lung_net = use_lung_net
        lung = np.zeros((nz, ny, nx), dtype=bool) if use_lung_net else None
        timings: dict[str, float] = {"load_s": self.load_s}

        full = LungROI.everything((nz, ny, nx))
        ordered = slice_order(nz, order, visible_slice)
        first_alone = visible_slice is not None or (order is not None and order != "ascending")
        done = 0

        def run_slab(zs: np.ndarray, roi: LungROI, fraction: float) -> Slab:
            lab, pr, sp, lm, cf, (y0, y1, x0, x1) = self._process(array, zs, is_hu, roi, cancel)
            # 0 outside the window: pages of the zeroed scan-size arrays there are never touched
            labels[zs, y0:y1, x0:x1] = lab[:, y0:y1, x0:x1]
            confidence[zs, y0:y1, x0:x1] = cf[:, y0:y1, x0:x1]
            if probs is not None and pr is not None:
                probs[zs] = pr
            slice_probs[zs] = sp
            segmented[zs] = True
            if lung is not None and lm is not None:
                lung[zs] = lm
            return Slab(z=zs, labels=lab, probabilities=pr, slice_probabilities=sp, fraction=fraction)

        t_seg = time.perf_counter()
        groups = slabs(ordered[:1], 1) if first_alone else []
        if groups:
            check_cancel(cancel)
            slab, done = run_slab(groups[0], full, 1.0 / max(nz, 1)), 1
            timings["first_slab_s"] = time.perf_counter() - t0
            report(0.9 * slab.fraction, f"Segmented slice {int(groups[0][0]) + 1}")
            yield slab

        given_lungs, job = lungs is not None, None
        if isinstance(lungs, Pending):  # the caller's search, still running (the app's, since the open)
            job, lungs = lungs.watch(cancel), None
        elif lungs is None and self.lung_gate:  # beside the networks where that pays (background.py)
            report(0.02, "Finding the lungs")
            job = find_lungs(volume, cancel, self.lungs_beside, self.device.type,
                             int(self.threads or torch.get_num_threads()), prepare=not use_lung_net)
            jobs.append(job)

        t_roi, roi = time.perf_counter(), full
        notes: list[str] = []
        if self.restrict_to_lungs:
            roi = find_roi(array, is_hu, volume.geometry.spacing)
            if not roi.detected and nz >= 8:
                notes.append("No lung was found by the intensity test: every slice was segmented.")
        timings["roi_s"] = time.perf_counter() - t_roi
        crop_roi = roi if self.crop else LungROI(roi.slices, full.boxes, roi.detected)
        if groups:  # read alone (step 2): cleared, then read again in its slab, or outside those slices forgotten
            for arr in (a for a in (labels, confidence, slice_probs, segmented, lung, probs) if a is not None):
                arr[groups[0][0]] = 0
        rest = fixed_slabs(roi.slices, self.batch_size, ordered)
        total = done + sum(len(zs) for zs in rest)
        for zs in rest:
            check_cancel(cancel)
            if job is not None and not job.running and job.result() is None:
                break  # no lung: nothing more is segmented
            fraction = (done + len(zs)) / max(total, 1)
            slab = run_slab(zs, crop_roi, fraction)
            done += len(zs)
            timings.setdefault("first_slab_s", time.perf_counter() - t0)
            report(0.9 * fraction, f"Segmented {done} of {total} slices")
            yield slab
        timings["segmentation_s"] = time.perf_counter() - t_seg
        if job is not None:
            lungs = job.result()
            timings["lungs_s"], timings["lungs_wait_s"] = job.seconds, job.waited_s
        if self.lung_gate and lungs is None:
            report(1.0, "Not assessed")
            timings["total_s"] = time.perf_counter() - t0
            return self._not_assessed(volume, [NO_LUNG], None, timings)

        rules: dict = {}
        nodules: list = []
        classifier_probs = slice_probs.copy() if nets["findings"] is not None else None
        if self.presence is not None:
            presence, presence_note = self.presence, None
        else:
            presence, presence_note = load_presence(seg.name, seg.sha256)
        if presence_note:
            notes.append(presence_note)
        if self.lung_gate and lung is not None and lungs is not None:
            # 8-bit images: the rules united with the lung model measure best (docs/MODELS.md)
            # only on slices where the rules found lung: the model also marks gas in the abdomen
            has_lung = lungs.lung.any(axis=(1, 2))
            if given_lungs:  # the caller's rules lungs (the app's, found at open): united the same way, as copies
                lungs, given_lungs = unite_lung_model(lungs, lung & has_lung[:, None, None], volume), False
            else:
                try:
                    lungs = lung_masks(volume, cancel=cancel, model_mask=lung & has_lung[:, None, None])
                except DataError:
                    pass
        if self.lung_gate:
            report(0.91, "Keeping findings where anatomy allows them")
            t_gate = time.perf_counter()
            gated = lung_gate(volume, labels, lungs, cancel=cancel, device=self.device,  # CUDA: on the device
                              own_lungs=not given_lungs, own_labels=True)  # edited in place, not copied
            rules = {k: dict(v) for k, v in gated.removed_by_rule.items()}
            labels, lungs = gated.labels, gated.lungs
            labels, rules[VESSEL_RULE] = remove_vessels(volume, labels, cancel=cancel, in_place=True)  # vessels.py
            labels, rules[NODULE_RULE], nodules = set_aside_nodules(volume, labels, lungs, cancel=cancel)  # nodules.py
            notes.extend(n.notice for n in nodules)
            timings["gate_s"] = time.perf_counter() - t_gate
        lung_px = lungs.pixels_per_slice() if lungs is not None else None  # no full-size lung mask
        shown, slice_p, low, regions = read_evidence(labels, confidence, lung_px, presence, in_place=self.lung_gate)
        if self.lung_gate:  # without the rules (raw model output, tests) nothing is removed
            labels = shown
            rules["low_evidence"] = low
        if probs is not None:  # the maps show what the overlay shows (a few slices at a time: no full-size mask)
            for z0 in range(0, nz, 16):
                part = labels[z0:z0 + 16]
                for c, lab in enumerate(FINDINGS):
                    probs[z0:z0 + 16, c][part != lab] = 0
        slice_probs = slice_p.astype(np.float32)
        scan_p = presence_scan(labels, slice_p, presence)

        report(0.92, "Estimating the COVID likelihood")
        t_cov = time.perf_counter()
        covid = self._covid(array, is_hu, roi.slices if roi.detected else segmented, cancel)
        timings["covid_s"] = time.perf_counter() - t_cov
        timings["total_s"] = time.perf_counter() - t0
        timings["network_s"] = self._network_s
        timings["network_cpu_s"] = self._network_cpu_s
        timings["slices_total"] = float(nz)
        timings["slices_segmented"] = float(segmented.sum())
        timings["batch_size"] = float(self._batch)

        source = "segmentation evidence" + ("" if presence.calibrated else " (not calibrated)")
        if "infection" in [c.lower() for c in seg.classes]:
            notes.append(f"'{seg.name}' is a binary infection model: its infection is shown as GGO.")
        report(1.0, "Done")
        return Prediction(labels=labels, probabilities=probs, slice_probabilities=slice_probs, segmented=segmented,
                          scan_probabilities=scan_p, covid_probability=covid, geometry=volume.geometry,
                          models=self.models(lung is not None), timings=timings, device=str(self.device),
                          slice_probability_source=source, notes=notes, lung_mask=lung, lungs=lungs,
                          rules_removed=rules, classifier_probabilities=classifier_probs,
                          presence_calibrated=presence.calibrated, evidence=regions, nodules=nodules)

    def _not_assessed(self, volume: Volume, reasons: list[str], lungs: Optional[LungMasks],
                      timings: dict[str, float]) -> Prediction:
        """An empty reading that says why it was not made."""
        nz, ny, nx = volume.shape
        return Prediction(labels=np.zeros((nz, ny, nx), dtype=np.uint8), probabilities=None,
                          slice_probabilities=np.zeros((nz, 3), dtype=np.float32), scan_probabilities={},
                          covid_probability=None, segmented=np.zeros(nz, dtype=bool), geometry=volume.geometry,
                          models=self.models(), timings=timings, device=str(self.device),
                          slice_probability_source="none", notes=[], lungs=lungs,
                          not_assessed=list(reasons))

    # -- work -----------------------------------------------------------------
    def _forward(self, net: N.Net, x: torch.Tensor) -> torch.Tensor:
        """One forward pass (the hook tests replace to simulate failures)."""
        if net.onnx is not None:
            return net.onnx(x).to(x.device)
        x = x.contiguous(memory_format=torch.channels_last)
        if self.amp_dtype is not None:
            with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype):
                return net.module(x).float()
        return net.module(x).float()

    def _run(self, net: N.Net, x: torch.Tensor, cancel: Optional[CancelLike]) -> torch.Tensor:
        """Forward ``x`` in batches, halving the batch on CUDA out-of-memory errors.

        The time spent here is the networks' own time (``timings["network_s"]``; the
        process's CPU time in ``network_cpu_s``, which other jobs on the machine disturb less).
        """
        outs, i = [], 0
        cuda = self.device.type == "cuda"
        while i < x.shape[0]:
            check_cancel(cancel)
            bs = min(self._batch, ONNX_FORWARD_SLICES) if net.onnx is not None and not cuda else self._batch
            t, c = time.perf_counter(), time.process_time()
            try:
                out = self._forward(net, x[i:i + bs])
                if cuda:
                    torch.cuda.synchronize(self.device)
            except torch.cuda.OutOfMemoryError:
                if bs <= 1:
                    raise ModelError("The GPU ran out of memory even for one slice: close other programs "
                                     "using the GPU or run on the CPU (--device cpu).") from None
                self._batch = max(1, bs // 2)
                self.oom_events += 1
                log.warning("GPU out of memory with %d slices per batch; retrying with %d", bs, self._batch)
                torch.cuda.empty_cache()
                continue
            finally:
                self._network_s += time.perf_counter() - t
                self._network_cpu_s += time.process_time() - c
            outs.append(out)
            i += out.shape[0]
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    def _unit_slices(self, array: np.ndarray, zs: np.ndarray, is_hu: bool,
                     extra: int) -> tuple[torch.Tensor, dict[int, int]]:
        """Normalised slices ``zs`` (plus ``extra`` neighbours each side) on the device."""
        need = set(int(z) for z in zs)
        nz = array.shape[0]
        for z in list(need):
            for dz in range(-extra, extra + 1):
                if 0 <= z + dz < nz:
                    need.add(z + dz)
        ids = sorted(need)
        dev_volume = self._device_volume
        if dev_volume is not None:
            raw = dev_volume[torch.as_tensor(ids, device=self.device)]
        else:
            raw = torch.from_numpy(np.ascontiguousarray(array[ids]))
            if raw.device != self.device:
                raw = raw.to(self.device)
        return N.to_unit(raw, is_hu), {z: i for i, z in enumerate(ids)}

    @staticmethod
    def _model_input(net: N.Net, unit: torch.Tensor, zs: np.ndarray, index: dict[int, int],
                     inputs: dict) -> torch.Tensor:
        """``net``'s input of slices ``zs`` at its input size, resized once per slab and shared."""
        key = (net.in_channels, net.neighbours, tuple(net.input_size))
        if key not in inputs:
            inputs[key] = N.resize(N.channels(unit, net, zs, index), net.input_size)
        return inputs[key]

    def _process(self, array: np.ndarray, zs: np.ndarray, is_hu: bool, roi: LungROI,
                 cancel: Optional[CancelLike]) -> tuple[np.ndarray, Optional[np.ndarray], np.ndarray,
                                                        Optional[np.ndarray], np.ndarray, P.Window]:
        """Labels, uint8 probabilities (or ``None``), per-slice probabilities, lung mask (or
        ``None``), per-pixel confidence of slices ``zs``, and the window outside which labels and
        confidence are 0.

        Softmax runs on the model-size crop; the class probabilities are resized to the
        slice once (bilinear: the labels and the confidence the presence model was fitted
        on stay what they were; labels taken at model size and upsampled by nearest
        neighbour changed whole regions after the presence threshold, docs/MODELS.md), and
        only inside the window where a pixel can differ from background (:mod:`.postprocess`:
        bit-identical to resizing the whole frame)."""
        nets = self._nets
        assert nets is not None
        seg = nets["segmentation"]
        assert seg is not None
        extra = max((n.in_channels // 2 for n in nets.values() if n is not None and n.neighbours), default=0)
        with torch.inference_mode():
            unit, index = self._unit_slices(array, zs, is_hu, extra)
            full = tuple(unit.shape[-2:])
            inputs: dict = {}
            probs, box = self._segment(seg, unit, zs, index, roi.box(zs), full, inputs, cancel)
            groups = N.finding_channels(seg)
            if nets["findings"] is not None:
                sp = self._classify(nets["findings"], self._model_input(nets["findings"], *inputs["_unit"], inputs),
                                    cancel)
            else:  # outside the crop the finding probabilities are 0: the crop's maximum is the slice's
                sp = N.finding_probabilities(probs, groups).amax(dim=(2, 3))
            lab, conf, pr, win = P.read_slab(probs, box, seg.input_size, full, seg.label_map(), groups,
                                             self.keep_probabilities)  # exact, full size only where it matters
            del probs
            lung_np = None
            if self._use_lung_net:
                lp, lbox = self._segment(nets["lung"], None, zs, index, roi.box(zs), full, inputs, cancel)
                lung_np = P.lung_slab(lp, lbox, nets["lung"].input_size, full)
            return lab, pr, sp.float().cpu().numpy().astype(np.float32), lung_np, conf, win

    def _segment(self, net: N.Net, unit: Optional[torch.Tensor], zs: np.ndarray, index: dict[int, int],
                 box: tuple[int, int, int, int], full: tuple[int, int], inputs: dict,
                 cancel: Optional[CancelLike]) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
        """Class probabilities ``(n, K, y1 - y0, x1 - x0)`` of the model-size crop ``(y0, y1, x0, x1)``.

        Outside the crop every pixel is background. ``unit`` may be ``None`` once
        ``inputs`` holds the slab (a second model on the same slab).
        """
        if unit is not None:
            inputs["_unit"] = (unit, zs, index)
        unit, zs, index = inputs["_unit"]
        x = self._model_input(net, unit, zs, index, inputs)
        h, w = net.input_size
        my0, my1, mx0, mx1 = 0, h, 0, w
        if self.crop and net.can_crop:
            my0, my1, mx0, mx1 = N.aligned_box(box, full, (h, w), net.multiple)
        if (my0, my1, mx0, mx1) != (0, h, 0, w):
            try:
                logits = self._run(net, x[..., my0:my1, mx0:mx1], cancel)
            except (RuntimeError, ValueError) as exc:
                if isinstance(exc, torch.cuda.OutOfMemoryError):
                    raise
                log.info("model %s refused a cropped input (%s); using whole slices", net.name, exc)
                net.can_crop = False
                return self._segment(net, None, zs, index, box, full, inputs, cancel)
        else:
            logits = self._run(net, x, cancel)
        return torch.softmax(logits.contiguous(), dim=1), (my0, my1, mx0, mx1)

    def _classify(self, net: N.Net, x: torch.Tensor, cancel: Optional[CancelLike]) -> torch.Tensor:
        """Sigmoid outputs of a classifier on its input ``x``, ``(n, outputs)``; findings ordered
        GGO, consolidation, effusion."""
        p = torch.sigmoid(self._run(net, x, cancel))
        if net.role != "findings":
            return p
        names = [c.lower() for c in net.classes]
        order = [names.index(FINDING_KEYS[lab]) if FINDING_KEYS[lab] in names else i
                 for i, lab in enumerate(FINDINGS)]
        return p[:, order]

    def _covid(self, array: np.ndarray, is_hu: bool, lung_slices: np.ndarray,
               cancel: Optional[CancelLike]) -> Optional[float]:
        net = (self._nets or {}).get("covid")
        if net is None:
            return None
        zs = covid_slices(lung_slices if lung_slices.any() else np.ones(array.shape[0], dtype=bool))
        check_cancel(cancel)
        with torch.inference_mode():
            unit, index = self._unit_slices(array, zs, is_hu, net.in_channels // 2 if net.neighbours else 0)
            p = self._classify(net, self._model_input(net, unit, zs, index, {}), cancel)
        return float(p[:, 0].mean().item())


def predict(volume: Volume, model_name: N.ModelSpec = None, device: str = "auto",
            progress: Optional[ProgressCallback] = None, cancel: Optional[CancelLike] = None,
            order: OrderSpec = None, visible_slice: Optional[int] = None,
            **kwargs: object) -> Prediction:
    """One-call convenience: ``Predictor(model_name, device, **kwargs).predict(volume, ...)``."""
    return Predictor(model_name, device=device, **kwargs).predict(  # type: ignore[arg-type]
        volume, progress=progress, cancel=cancel, order=order, visible_slice=visible_slice)


__all__: Sequence[str] = ("Predictor", "predict")
