"""pytest hooks only: options, run id, evidence collection, terminal summary, report writing.

Logic lives in the modules beside this one; fixtures in fixtures.py.
"""

from __future__ import annotations

import os
import secrets
import signal
from pathlib import Path

import pytest

from . import (baseline, calls, debian_mirror, evidence, expectations, faults, matrix, progress, progress_sinks, reporting,
               scheduling)
from .engines import Engine
from .errors import SaveexportError
from .evidence import Collector, fact_record
from .fixtures import (  # noqa: F401  (pytest finds fixtures through this module)
    app_image,
    archive_dir,
    claim_evidence,
    container_engine,
    debian_mirrors,
    empty_engine,
    engine_ops,
    export_archive,
    run_scope,
    save_archive,
    saveexport_compose,
    saveexport_engine_spec,
    saveexport_settings,
    second_image,
    subject_container,
    subject_image,
)
from .reporting import html as _report_html  # noqa: F401  (the page's renderer and Markdown's extensions, imported with
# the plugin: imported first inside a pytester run, their modules are dropped after it while the plugin's stay, and
# the next run's Markdown refused its own table extension as "not of type Extension")
from .reporting.common import user_path
from .settings import add_options, resolve
from .state import (COLLECTOR, DOCUMENT, ENGINE_FAULTS, ENGINE_IDS, ENGINE_SPECS, MIRRORS, MIRRORS_NOTED, PENDING_FACTS,
                    PROGRESS, PROGRESS_BEFORE, REPORT_ERROR, REPORT_PATHS, RUN_ID, SETTINGS)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "claim(*ids): the article's claims (C1..C13) a test gives evidence for")
    config.addinivalue_line("markers", "move_pass(name): the move matrix pass (make, load) a test belongs to")
    if not config.pluginmanager.hasplugin("xdist"):  # the engine grouping marks tests for xdist's loadgroup
        config.addinivalue_line("markers", "xdist_group(name): run these tests in one xdist worker")
    # before the engines are parsed: that may fetch builds
    sink = config.stash[PROGRESS] = progress_sinks.terminal_sink(config)
    config.stash[PROGRESS_BEFORE] = progress.install(sink)
    if _is_controller(config):
        config.pluginmanager.register(_ProgressHold(sink), "saveexport-progress-hold")
    try:
        settings = config.stash[SETTINGS] = resolve(config)
        mirrors = config.stash[MIRRORS] = debian_mirror.choose(settings.debian_mirror, settings.debian_mirror_origin)
        config.stash[ENGINE_SPECS] = [matrix.parse(raw, settings.docker_host, mirrors) for raw in settings.engine]
    except SaveexportError as exc:
        raise pytest.UsageError(str(exc)) from None
    ids = [spec.id for spec in config.stash[ENGINE_SPECS]]
    if len(set(ids)) != len(ids):
        raise pytest.UsageError(f"--saveexport-engine names the same engine twice: {', '.join(ids)}")
    private = [spec.id for spec in config.stash[ENGINE_SPECS] if spec.private]
    dist = getattr(config.option, "dist", "no")
    if private and _is_controller(config) and getattr(config.option, "numprocesses", None) and \
            dist not in ("no", "loadgroup"):
        # two workers would each start the same private engine, and each start stops the other's daemon
        raise pytest.UsageError(f"--dist {dist} would run {', '.join(private)} in several xdist workers at "
                                f"once; use -n N --dist loadgroup (each engine's tests then run in one worker)")
    # One run id for the whole run; each xdist worker adds its own name to it, so that one worker's
    # cleanup never removes what another, still running, made on a shared engine.
    workerinput = getattr(config, "workerinput", None)
    if workerinput:
        config.stash[RUN_ID] = f"{workerinput['saveexport_run_id']}-{workerinput['workerid']}"
    else:
        config.stash[RUN_ID] = secrets.token_hex(4)
    if settings.record_calls:
        calls.start(Path(settings.record_calls), workerinput["workerid"] if workerinput else "main")
    config.stash[PENDING_FACTS] = []
    if _is_controller(config):
        config.stash[COLLECTOR] = Collector()
    _stop_on_sigterm()


def pytest_report_header(config: pytest.Config) -> list[str]:
    """One line per engine that cannot be had (its tests fail with the same line)."""
    return [f"saveexport: {spec.raw}: {spec.unavailable}" for spec in config.stash.get(ENGINE_SPECS, [])
            if spec.unavailable]


def _stop_on_sigterm() -> None:
    """SIGTERM (CI cancelling a job) unwinds like Ctrl-C, so fixtures clean the engine up."""
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not in the main thread
        pass


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses an engine runs once per engine; its id names the engine."""
    if "saveexport_engine_spec" not in metafunc.fixturenames:
        return
    specs = metafunc.config.stash[ENGINE_SPECS]
    # One xdist group per engine: with `-n N --dist loadgroup` engines run side by side, each in one
    # worker (the scheduler is ours, see scheduling.py; the mark serves xdist's own where it works).
    metafunc.parametrize("saveexport_engine_spec",
                         [pytest.param(spec, id=_engine_id(metafunc.config, spec),
                                       marks=pytest.mark.xdist_group(f"saveexport-{spec.id}")) for spec in specs],
                         indirect=True, scope="session")


def _engine_id(config: pytest.Config, spec) -> str:
    """An existing endpoint is asked what it is (a few seconds at most); private engines know already."""
    if spec.kind != "endpoint":
        return spec.id
    cache = config.stash.setdefault(ENGINE_IDS, {})
    if spec.raw not in cache:
        try:
            engine = Engine.connect(spec.endpoint)
            cache[spec.raw] = engine.facts.label
            engine.close()
        except SaveexportError:
            cache[spec.raw] = spec.id
    return cache[spec.raw]


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """--saveexport-move-pass=make or load: the move matrix's other pass is not this run's (deselected)."""
    wanted = config.stash[SETTINGS].move_pass
    if wanted == "both":
        return
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("move_pass")
        (drop if marker is not None and marker.args[0] != wanted else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadgroup`: each engine's tests in one worker (xdist's grouping fails on pytest 9.2)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    return scheduling.make_scheduler(config, log, [_engine_id(config, spec) for spec in config.stash[ENGINE_SPECS]])


@pytest.hookimpl(optionalhook=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    calls.stop()
    progress.install(config.stash.get(PROGRESS_BEFORE, None))  # an in-process pytester run gives the outer one back
    if PROGRESS in config.stash:
        config.stash[PROGRESS].close()  # the workers' directory goes


def pytest_configure_node(node) -> None:
    """xdist controller: hand the run id to every worker, and where its progress lines go."""
    node.workerinput["saveexport_run_id"] = node.config.stash[RUN_ID]
    node.workerinput.update(node.config.stash[PROGRESS].for_workers())


class _ProgressHold:
    """pytest writes a test's report: a progress update showing in place steps aside first (progress.py)."""

    def __init__(self, sink):
        self.sink = sink

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logstart(self):
        with self.sink.hold():
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self):
        with self.sink.hold():
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logfinish(self):
        with self.sink.hold():
            return (yield)

    @pytest.hookimpl(wrapper=True, trylast=True)  # inside the terminal reporter's, which writes the last [100%]
    def pytest_runtestloop(self):
        try:
            return (yield)
        finally:
            self.sink.finish()  # the workers are done: their last lines first


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    if call.excinfo is not None and call.excinfo.errisinstance(expectations.UnexpectedBehaviour):
        for record in call.excinfo.value.records:
            item.config.stash[PENDING_FACTS].append(fact_record(
                "new-behaviour", f"{record['engine']} {record['rule']} {item.nodeid}", dict(record, test=item.nodeid)))
    if call.when == "teardown":
        _note_mirrors(item.config)
        _note_expectations(item.config)
        pending = item.config.stash[PENDING_FACTS]
        if pending:
            item.user_properties.extend(("saveexport", fact) for fact in pending)
            pending.clear()
    report = yield
    if report.failed:
        _engine_fault(item, report)
    if report.failed and call.when == "call":
        _attach_container_logs(item, report)
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """An engine that died (or went away, or is stopped) fails its remaining tests at once, with the same
    line, unless it answers again (restarted by someone): then the run carries on with it."""
    spec = getattr(getattr(item, "callspec", None), "params", {}).get("saveexport_engine_spec")
    faulted = item.config.stash.get(ENGINE_FAULTS, {})
    engine = faulted.get(getattr(spec, "id", None))
    if engine is None:
        return
    back = faults.recovered(engine)
    if back is not None:
        del faulted[spec.id]
        _record_fault(item.config, spec.id, back)
        return
    fault = engine.fault
    pytest.fail(f"{fault.line} (at {fault.when}, during {fault.during}); its remaining tests fail at once",
                pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item):
    """A census of the engine's storage after each test's own teardown (storage_watch.py)."""
    watch = getattr(getattr(item, "funcargs", {}).get("container_engine"), "storage_watch", None)
    if watch is not None:
        watch.test_started(item.nodeid)
    yield
    if watch is not None:
        watch.test_ended(item.nodeid)


def _engine_fault(item: pytest.Item, report: pytest.TestReport) -> None:
    """A failed test on an engine: was it the engine? Then say so, with the daemon's last log lines."""
    engine = getattr(item, "funcargs", {}).get("container_engine")
    if engine is None or getattr(engine, "spec", None) is None:
        return
    known = item.config.stash.setdefault(ENGINE_FAULTS, {})
    if engine.spec.id in known:
        return
    fault = engine.fault or faults.diagnose(engine, during=item.nodeid)
    if fault is None:
        return
    if fault.during != item.nodeid:  # the operation it happened in, within this test
        fault.during = item.nodeid + (f" ({fault.during})" if fault.during else "")
    if fault.lasting:
        engine.fault = fault
        known[engine.spec.id] = engine
    text = fault.line + ("\n" + "\n".join(fault.log_tail) if fault.log_tail else "")
    report.sections.append((f"engine fault: {fault.engine} (last {len(fault.log_tail)} log lines)", text))
    _record_fault(item.config, engine.spec.id, fault)


def _record_fault(config: pytest.Config, engine_id: str, fault: faults.Fault) -> None:
    config.stash[PENDING_FACTS].append(fact_record("engine-fault", f"{engine_id} {fault.kind} {fault.when}",
                                                   fault.to_dict()))


def _note_expectations(config: pytest.Config) -> None:
    """Which rule answered what for which engine, and whether measured or extrapolated (expectations.py)."""
    for used in expectations.USED:
        config.stash[PENDING_FACTS].append(fact_record("expectation", f"{used['engine']} {used['rule']}", used))
    expectations.USED.clear()


def _note_mirrors(config: pytest.Config) -> None:
    """Which Debian mirror this process fetched from, once it has asked (it asks only when it fetches)."""
    mirrors = config.stash.get(MIRRORS, None)
    if mirrors is None or not mirrors.asked:
        return
    data = mirrors.to_dict()
    if config.stash.get(MIRRORS_NOTED, None) != data:
        config.stash[MIRRORS_NOTED] = data
        config.stash[PENDING_FACTS].append(fact_record("debian-mirror", f"{os.getpid()}", data))


def _attach_container_logs(item: pytest.Item, report: pytest.TestReport) -> None:
    """A failing experiment shows the subject container's last log lines (pytest-docker-tools style)."""
    funcargs = getattr(item, "funcargs", {})
    name = funcargs.get("subject_container")
    ops = funcargs.get("engine_ops")
    if not name or ops is None:
        return
    lines = ops.logs(name, tail=40)
    if lines:
        report.sections.append((f"container {name} (last 40 log lines)", "\n".join(lines)))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    if _is_controller(session.config):
        session.config.pluginmanager.register(_ReportListener(session.config), "saveexport-report-listener")


class _ReportListener:
    """Collects evidence from every report this process sees (with xdist: the controller's view)."""

    def __init__(self, config: pytest.Config):
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.config.stash[COLLECTOR].add_report(report)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Build the evidence document once and write it; the terminal summary shows the same document."""
    config = session.config
    if PROGRESS in config.stash:
        config.stash[PROGRESS].finish()  # the workers' last progress lines, before the summary
    if not _is_controller(config) or not config.stash[COLLECTOR].has_evidence:
        return
    document = config.stash[COLLECTOR].document(exit_status=int(exitstatus), run_id=config.stash[RUN_ID])
    settings = config.stash[SETTINGS]
    if settings.baseline:
        try:
            changes, notes = baseline.compare(evidence.load(Path(settings.baseline)), document)
        except SaveexportError as exc:
            changes, notes = [f"the baseline cannot be used: {exc}"], []
        document["baseline"] = {"file": user_path(settings.baseline, Path(config.rootpath)), "changes": changes,
                                "notes": notes}
        if changes and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    config.stash[DOCUMENT] = document
    directory = settings.report_dir
    try:
        config.stash[REPORT_PATHS] = reporting.write(document, directory)
    except OSError as exc:
        config.stash[REPORT_ERROR] = f"could not write the report to {directory}: {exc}"
    if settings.summary:
        try:
            reporting.write_summary(document, Path(settings.summary), append=settings.summary_append)
        except OSError as exc:
            config.stash[REPORT_ERROR] = f"could not write the job summary to {settings.summary}: {exc}"


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    document = config.stash.get(DOCUMENT, None)
    if document is None:
        return
    terminalreporter.write_sep("=", "saveexport verdicts")
    engines = ", ".join(e["label"] for e in document["engines"]) or "no engine"
    terminalreporter.write_line(f"engine: {engines}")
    for claim, data in document["claims"].items():
        verdicts = ", ".join(entry["verdict"] for entry in data["per_engine"].values())
        terminalreporter.write_line(f"{claim:>4}  {verdicts:<17} {data['text'][:90]}")
    compared = document.get("baseline")
    if compared:
        terminalreporter.write_sep("=", f"saveexport baseline {compared['file']}")
        for line, colour in baseline.readable(compared["changes"], compared["notes"]):
            terminalreporter.write_line(line, **({colour: True} if colour else {}))
    if REPORT_ERROR in config.stash:
        terminalreporter.write_line(f"saveexport: {config.stash[REPORT_ERROR]}", red=True)
    paths = config.stash.get(REPORT_PATHS, [])
    if paths:
        terminalreporter.write_line(f"saveexport report: {paths[0]} (evidence: {paths[1]}; one page: {paths[2]})")
