"""``utom predict --scheduler``: the tiles of large images, and the images of a batch, as tasks
of a Dask cluster (``pip install 'utom[distributed]'``).

The client does what one process would do before the first tile — checks, tiling, and for
tiled planes the normalisation statistics, sampled once per plane — and ships them with the
tasks (``utom_core.inference.blocks``), so the output is bit-identical to ``utom predict``
without a scheduler. Every image is written into one OME-Zarr store at a fixed hidden path
beside its output, unit by unit (a chunk, or a shard); the pyramid is built by tasks too, and
the store is renamed into place (or, for other formats, written into the output) only when
complete. Dask reruns the tasks of a worker that died; a job interrupted (Ctrl-C, SIGTERM, a
lost client) leaves the store, and ``--resume`` keeps every unit whose checksum still holds.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from utom_core.console import console
from utom_core.errors import DiskError, Interrupted, UtomError, first_line
from utom_core.inference.blocks import (
    MARKS,
    ModelSpec,
    PlaneJob,
    batches_for,
    is_written,
    plane_reader,
    predict_tiles,
    recorded_statistics,
    unit_region,
    units,
    write_unit_task,
)
from utom_core.inference.job_records import finished, job_identity, record_finished
from utom_core.inference.planes import PlanePredictor
from utom_core.inference.predictor import Predictor
from utom_core.io import FormatTable, ImageSource, writer_for
from utom_core.io.atomic import remove, write_json
from utom_core.io.omezarr import OmeZarrSink, pool_in_store
from utom_core.io.replaceable import commit_output
from utom_core.progress import LoopProgress
from utom_core.task import Slicing
from utom_core.threads import cpu_count

JOB_FILE = ".utom-job.json"
"""What a job's store was started for (inputs, model, options): ``--resume`` checks it."""
SCHEDULER_HELP = "local, local:N (N worker processes here) or tcp://HOST:PORT"


def job_store(output: Path) -> Path:
    """The fixed hidden path of ``output``'s store while its job runs (found again by
    ``--resume``; a stale-temporary name, see rundirs.TEMPORARY)."""
    return output.with_name(f".{output.name}.job.partial")


def local_workers(scheduler: str) -> int | None:
    """Worker processes of ``local[:N]`` (all cores by default); None for a scheduler's
    address; UtomError for anything else."""
    if scheduler.startswith("tcp://") and len(scheduler) > len("tcp://"):
        return None
    name, _, count = scheduler.partition(":")
    if name != "local" or (count and not (count.isdigit() and int(count) > 0)):
        raise UtomError(f"--scheduler {scheduler}: expected {SCHEDULER_HELP}")
    return int(count or cpu_count())


@contextlib.contextmanager
def connect(scheduler: str) -> Iterator[Any]:
    """A client of a new local cluster (``local[:N]``: N processes of one thread, only on
    localhost) or of a running scheduler (``tcp://HOST:PORT``)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UtomError("--scheduler: needs Dask's distributed scheduler: "
                        "pip install 'utom[distributed]'") from None
    workers = local_workers(scheduler)
    if workers is not None:
        # torch threads per worker: the caller's OMP_NUM_THREADS, else the usable CPUs shared
        threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, cpu_count() // workers))
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address="127.0.0.1:0",
                          silence_logs=50, env={"OMP_NUM_THREADS": threads}) as cluster, \
                Client(cluster) as client:
            yield client
        return
    try:
        client = Client(scheduler, timeout=30)
    except OSError as err:
        raise UtomError(f"--scheduler {scheduler}: cannot connect ({err})") from None
    with client:
        yield client


class FileJob:
    """One image on the cluster: its store, its tasks and its commit."""

    def __init__(self, source: ImageSource, output: Path, predictor: Predictor, spec: ModelSpec,
                 resume: bool, overwrite: bool) -> None:
        self.image, self.output, self.spec, self.overwrite = source.path, output, spec, overwrite
        self.formats = predictor.formats
        self.store = job_store(output)
        if self.store.exists() and not resume:
            if not overwrite:
                raise UtomError(f"{output}: an interrupted job left {self.store.name} beside it: "
                                "add --resume to continue it, or --overwrite to start again")
            remove(self.store)
        self.resumed = self.store.exists()
        self.info = predictor.output_info(source)
        self.identity = job_identity(self.image, self.info, spec, predictor.model)
        self.planes = self._plan(source, predictor)
        self._open_store()
        self.array = self.sink.level(0)
        every = units(self.array)
        self.todo = [u for u in every if not is_written(str(self.store), self.array, u)]
        if len(self.todo) < len(every):
            _say(f"{output}: resuming: {len(every) - len(self.todo)} of {len(every)} units "
                 "already written and verified")

    def _open_store(self) -> None:
        """A new store, or with ``--resume`` the one an interrupted job left (if any)."""
        again = "rerun it without --resume and with --overwrite to start again"
        if self.resumed:
            try:
                recorded = json.loads((self.store / JOB_FILE).read_text())
            except (OSError, ValueError) as err:
                raise UtomError(f"{self.output}: the interrupted job's record in {self.store.name} "
                                f"is missing or damaged ({first_line(err)}); {again}") from None
            if recorded != self.identity:
                raise UtomError(f"{self.output}: the interrupted job in {self.store.name} was "
                                f"started with other inputs, model or options; {again}")
        try:
            self.sink = OmeZarrSink(self.output, self.info, self.spec.options.tile,
                                    partial=self.store)
        except Exception as err:  # a damaged store of an interrupted job (a full disk: OSError)
            if not self.resumed or (isinstance(err, OSError) and err.errno is not None):
                raise
            raise UtomError(f"{self.output}: the interrupted job's store {self.store.name} is "
                            f"damaged ({first_line(err)}); {again}") from None
        if not (self.store / JOB_FILE).exists():
            try:
                write_json(self.store / JOB_FILE, self.identity)
            except BaseException:
                remove(self.store)
                raise

    def _plan(self, source: ImageSource, predictor: Predictor) -> list[PlaneJob]:
        """Every plane with its statistics (sampled here, once per plane, as one process)."""
        model = predictor.model
        planes = PlanePredictor(model.generator, model.source_norm, self.spec.options)
        shape = self.info.shape
        indices: list[int | None] = list(range(shape[1])) if len(shape) == 4 else [None]
        jobs = []
        for plane in indices:
            grid = planes.grid(self.info.plane_shape)
            with planes.statistics(plane_reader(source, plane), grid):
                statistics = recorded_statistics(planes.runner)
            jobs.append(PlaneJob(str(self.image.resolve()), plane, self.info.plane_shape,
                                 statistics))
        return jobs

    def submit(self, client: Any, planes: PlanePredictor, tag: str, order: Iterator[int]
               ) -> tuple[dict[Any, int], list[Any]]:
        """Tile and unit tasks (the units still to do), prioritised so that the units of a
        tile row run before the next rows' tiles: results do not pile up."""
        batch = self.spec.options.batch
        grid = planes.grid(self.info.plane_shape)
        tiles: dict[Any, int] = {}
        written = []
        for job in self.planes:
            needs = {u: batches_for(grid, batch, *unit_region(self.array, u))
                     for u in self.todo if u[0] == job.plane}
            ready: dict[tuple[int, int], list] = {}  # units by the last batch they wait for
            for unit, batches in needs.items():
                ready.setdefault(batches[-1], []).append(unit)
            futures = {}
            for row, first in sorted(set(itertools.chain.from_iterable(needs.values()))):
                futures[row, first] = client.submit(
                    predict_tiles, self.spec, job, row, first, priority=-next(order),
                    key=f"utom-tiles-{tag}-{job.plane}-{row}-{first}")
                tiles[futures[row, first]] = min(batch, len(grid.cols) - first)
                for unit in ready.get((row, first), []):
                    written.append(client.submit(
                        write_unit_task, self.spec, str(self.store), unit,
                        *(futures[b] for b in needs[unit]), priority=-next(order),
                        key=f"utom-unit-{tag}-{'-'.join(map(str, unit))}"))
        return tiles, written

    def commit(self, client: Any) -> None:
        """The pyramid (one task per unit of every level), the metadata, then the output."""
        def pool(jobs: list) -> None:
            client.gather([client.submit(pool_in_store, str(self.store), level, block,
                                         self.sink.unit, pure=False) for level, block in jobs])

        if writer_for(self.output, formats=self.formats).name != "ome-zarr":  # its own
            _copy(self.array, self.info, self.output, self.spec.options.tile, self.overwrite,
                  self.formats)
            remove(self.store)
        else:
            self.sink.finish(pool)
            remove(self.store / MARKS)
            remove(self.store / JOB_FILE)
            commit_output(self.store, self.output, self.overwrite, "ome-zarr")
        record_finished(self.output, self.identity)


def _copy(array: Any, info: Any, output: Path, chunk: int, overwrite: bool,
          formats: FormatTable | None) -> None:
    """Level 0 of the store into the output's own format, band by band."""
    sink = writer_for(output, formats=formats).create(output, info, chunk=chunk)
    try:
        planes = [()] if array.ndim == 3 else [(slice(z, z + 1),) for z in range(array.shape[1])]
        for plane in planes:
            for y0 in range(0, array.shape[-2], chunk):
                rows = slice(y0, min(y0 + chunk, array.shape[-2]))
                sink.write((*plane, rows, slice(0, array.shape[-1])),
                           array[(slice(None), *plane, rows, slice(None))])
        sink.commit(replace=overwrite)
    except BaseException:
        sink.abort()
        raise


def predict_on_cluster(sources: list[ImageSource], outputs: list[Path], predictor: Predictor,
                       spec: ModelSpec, scheduler: str, landed: Callable[[Path, Path], None],
                       resume: bool = False, overwrite: bool = False,
                       show_progress: bool = True) -> None:
    """Predict every image (open; the caller closes them) on the cluster with ``spec``'s
    tiling (``predictor.tile_options()``); outputs appear one by one, each complete (then
    ``landed(image, output)``)."""
    local_workers(scheduler)  # a bad value is refused before any work
    model = predictor.model
    if model.slicing is Slicing.xz_yz:
        raise UtomError("--scheduler: models of XZ/YZ planes (isotropic) run in one process "
                        "only; leave out --scheduler")
    from distributed import KilledWorker, as_completed

    jobs: list[FileJob] = []
    try:
        for source, output in zip(sources, outputs, strict=True):
            if resume and not overwrite and finished(output, job_identity(
                    source.path, predictor.output_info(source), spec, model)):
                _say(f"{output}: finished by this job before; skipped")
                continue
            jobs.append(FileJob(source, output, predictor, spec, resume, overwrite))
        if not jobs:  # every output finished before: no cluster to start
            return
        planes = PlanePredictor(model.generator, model.source_norm, spec.options)
        with connect(scheduler) as client:
            order, tag = itertools.count(), uuid.uuid4().hex[:8]
            submitted = [(job, *job.submit(client, planes, f"{tag}-{i}", order))
                         for i, job in enumerate(jobs)]
            total = sum(sum(tiles.values()) for _, tiles, _ in submitted)
            progress = LoopProgress(f"predicting {len(sources)} image(s) on the cluster", total,
                                    unit="tile", show=show_progress)
            note = f"dashboard {getattr(client, 'dashboard_link', '-')}"
            with progress.shown():
                for job, tiles, written in submitted:
                    for future in as_completed([*tiles, *written]):
                        future.result()  # a task's error, raised here
                        progress.update(progress.done + tiles.get(future, 0), note=note)
                    job.commit(client)
                    jobs.remove(job)
                    landed(job.image, job.output)
    except (KeyboardInterrupt, KilledWorker) as err:
        kept = _keep_started(jobs)
        what = "interrupted" if isinstance(err, KeyboardInterrupt) else f"failed ({err})"
        where = (f"the units written so far are kept in {', '.join(map(str, kept))}: run the "
                 "same command with --resume to continue" if kept else "nothing was kept")
        error = Interrupted if isinstance(err, KeyboardInterrupt) else UtomError
        raise error(f"{jobs[0].output if jobs else outputs[0]}: {what}; {where}") from None
    except BaseException as err:
        for job in jobs:  # what an earlier job left stays for another --resume
            if not job.resumed:
                remove(job.store)
        if isinstance(err, OSError):
            output = jobs[0].output if jobs else outputs[0]
            raise DiskError.refused(err, output, outcome="nothing was written there") from None
        raise


def _keep_started(jobs: list[FileJob]) -> list[Path]:
    """The stores of unfinished jobs with units written (for --resume); the others go."""
    kept = []
    for job in jobs:
        if (job.store / MARKS).is_dir() and any((job.store / MARKS).iterdir()):
            kept.append(job.store)
        else:
            remove(job.store)
    return kept


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)
