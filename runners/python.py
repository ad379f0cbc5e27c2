# coderun's Python runner for pooled boxes. The interpreter starts ahead of time (with the
# same flags as an unpooled run) and blocks here on fd 3 until a request hands it a program.
# It then behaves like `python3 -E -s -u -B main.py ARGS`: the files are written to /work,
# sys.argv and sys.path[0] are the script's, the code runs as __main__ with the file's name
# in tracebacks, and an uncaught exception prints the usual traceback (without this runner's
# frame) and exits 1. Nothing of the runner stays reachable from the program but the module
# objects it imported (os, sys, gc, atexit, _json).
#
# Start-up: the runner imports only built-in modules and the `_json` extension. `import json`
# (it imports `re` and compiles its patterns) and `import ctypes` cost more CPU than the rest
# of the interpreter's start, paid by every pooled box; the message is parsed with the C
# scanner `json` itself uses, and the command line is written through /proc/self/mem.
#
# Ending: the interpreter's own shutdown tears down every module (~5 ms of CPU here, more than
# the rest of a hello world). Nobody sees that work, so the runner does only its observable
# part, in the interpreter's order, then `os._exit`: join non-daemon threads, run atexit
# callbacks (logging, multiprocessing and weakref.finalize hook in there), flush stdout and
# stderr, collect cycles, clear the program's module namespaces (so `__del__` methods run and
# files a global holds are flushed), collect again, flush again. Any exit it cannot reproduce exactly (a
# SystemExit whose code is not an int or None, a flush that fails) takes the normal path.
import atexit
import gc
import os
import sys


def _set_cmdline(argv):
    # Write the program's command line over this process's argv area (the pool left room for
    # it) the way setproctitle does: one string, then NULs, and a non-NUL last byte, which
    # tells the kernel to show /proc/<pid>/cmdline up to the first NUL. So ps and
    # /proc/<pid>/cmdline show `python3 -E -s -u -B main.py ARGS` (space-separated).
    with open("/proc/self/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    start, end = int(fields[45]), int(fields[46])
    title = b" ".join(os.fsencode(a) for a in argv)[: max(0, end - start - 2)] + b"\0"
    if start and end - start >= 2:
        # Our own memory: /proc/self/mem needs no ptrace permission for the process itself.
        # The title is cosmetic: where the kernel refuses, the runner's own command line stays.
        try:
            mem = os.open("/proc/self/mem", os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            os.pwrite(mem, title + b"\0" * (end - start - len(title) - 1) + b".", start)
        except OSError:
            pass
        finally:
            os.close(mem)


class _Decoding:
    # What `_json.make_scanner` reads from its context: json.loads's defaults.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name):
        raise ValueError(f"unexpected {name} in the hand-off message")


def _loads(data):
    text = data.decode("utf-8", "surrogatepass").strip()
    try:
        import _json
    except ImportError:  # an interpreter built without the accelerator
        import json

        return json.loads(text)
    try:
        value, end = _json.make_scanner(_Decoding())(text, 0)
    except StopIteration as e:
        raise ValueError(f"invalid hand-off message at {e.value}") from None
    if end != len(text):
        raise ValueError(f"invalid hand-off message: extra data at {end}")
    return value


def _receive():
    with os.fdopen(3, "rb") as ctl:  # closes fd 3: the program sees only 0-2
        return _loads(ctl.read())


def _main():
    # The interpreter's start-up objects move to the permanent generation, so the program's
    # collections (and the one at exit) walk only its own objects. Only gc.get_objects() and
    # gc.get_freeze_count() can tell.
    gc.freeze()
    # While it waits, `ps` shows the runner's own short command line, not the argv room.
    with open("/proc/self/cmdline", "rb") as own:
        parts = own.read().split(b"\0")
    _set_cmdline([os.fsdecode(p) for p in parts[: parts.index(os.fsencode(__file__)) + 1]])
    msg = _receive()
    for f in msg["files"]:
        path = os.path.join("/work", f["path"])
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755 if f["executable"] else 0o644)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(f["content"])
    main_path = os.path.join("/work", msg["main"])
    sys.argv = [msg["main"]] + msg["args"]
    _set_cmdline([sys.executable, "-E", "-s", "-u", "-B"] + sys.argv)
    sys.path[0] = "/work"
    with open(main_path, "rb") as src:
        source = src.read()
    module = type(sys)("__main__")
    module.__file__ = main_path
    module.__builtins__ = __builtins__
    module.__cached__ = None
    module.__loader__ = None
    module.__spec__ = None
    sys.modules["__main__"] = module
    try:
        code = compile(source, main_path, "exec", dont_inherit=True)
    except SyntaxError as e:
        # The interpreter reports a script's syntax error without a traceback header.
        sys.excepthook(type(e), e.with_traceback(None), None)
        sys.exit(1)
    try:
        exec(code, module.__dict__)
    except SystemExit:
        raise
    except BaseException as e:
        # Print as the interpreter would, starting at the program's own frame.
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
        sys.excepthook(type(e), e.with_traceback(tb), tb)
        if isinstance(e, KeyboardInterrupt):
            # Like CPython: die by SIGINT so the parent sees the signal.
            import signal

            sys.stdout.flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        sys.exit(1)


def _exit_status(exc):
    """The status a SystemExit ends the interpreter with, or None where the interpreter
    would print something first (a message instead of a code)."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int) and -(2**31) <= code < 2**31:
        return code & 0xFF
    return None


def _clear(module):
    # Like the interpreter's module teardown: names starting with one underscore first, then
    # the rest, in definition order; __builtins__ stays.
    d = module.__dict__
    for first_pass in (True, False):
        for k in list(d):
            if k == "__builtins__":
                continue
            if first_pass == (k.startswith("_") and not k.startswith("__")):
                d[k] = None


def _finish(status):
    if "threading" in sys.modules:
        sys.modules["threading"]._shutdown()
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        sys.exit(status)  # the normal shutdown reports it (and exits 120)
    gc.collect()
    main = sys.modules.get("__main__")
    if main is not None:
        _clear(main)
    for name, module in list(sys.modules.items()):
        if name != "__main__" and str(getattr(module, "__file__", "") or "").startswith("/work/"):
            _clear(module)
    gc.collect()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        sys.exit(status)
    os._exit(status)


try:
    _main()
    _status = 0
except SystemExit as _e:
    _status = _exit_status(_e)
    if _status is None:
        raise
_finish(_status)
