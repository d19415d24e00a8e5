"""Errors, configuration, devices, contexts and the conversions every part shares."""

import os

import numpy as np

from ._lib import ffi, lib

XM_OK = 0
_STATUS = {}
for _v in range(64):
    _n = ffi.string(lib.xm_status_name(_v)).decode()
    if not _n.startswith("XM_"):
        break
    _STATUS[_n[3:]] = _v


class Error(Exception):
    """A failure reported by libxmargin (or by the binding before it).

    status: the library's status name ("EFORMAT", ...; "" for the binding's
    own checks); messages: the diagnostics, each "file: /dataset[row] =
    value: rule"; detail: the context's last error (xm_ctx_last_error)."""

    def __init__(self, what, status="", messages=(), detail=""):
        self.status = status
        self.messages = list(messages)
        self.detail = detail
        text = what
        if self.messages:
            text += "\n" + "\n".join(self.messages)
        if detail:
            text += "\n" + detail
        super().__init__(text)


class FormatError(Error):
    """Input that breaks the data contract (XM_EFORMAT; an unreadable input file, XM_EIO)."""


class ConfigError(Error):
    """An invalid configuration key or value (XM_ECONFIG)."""


class DeviceError(Error):
    """No such device, or the device failed (XM_ENODEV, XM_EOPENCL, XM_EBUILD, XM_ERESOURCE)."""


def status_name(st):
    return ffi.string(lib.xm_status_name(st)).decode()[3:]


def _error_class(st):
    n = status_name(st)
    if n in ("EFORMAT", "EIO"):
        return FormatError
    if n == "ECONFIG":
        return ConfigError
    if n in ("ENODEV", "EOPENCL", "EBUILD", "ERESOURCE", "EUNSUPPORTED"):
        return DeviceError
    return Error


def raise_status(st, what, messages=(), detail=""):
    n = status_name(st)
    text = "%s: %s (XM_%s)" % (what, ffi.string(lib.xm_strerror(st)).decode(), n)
    raise _error_class(st)(text, n, messages, detail)


def diag_messages(d):
    """The messages of an xm_diag (and "... and N more errors")."""
    out = [ffi.string(d.msg[i]).decode("utf-8", "replace") for i in range(d.shown)]
    if d.total > d.shown:
        out.append("... and %d more errors" % (d.total - d.shown))
    return out


class Diag:
    """with Diag() as d: lib.f(..., d.ptr) -- freed afterwards."""

    def __init__(self):
        self.ptr = ffi.new("xm_diag *")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        lib.xm_diag_free(self.ptr)
        return False

    def messages(self):
        return diag_messages(self.ptr)


def cstr(s):
    return ffi.new("char[]", os.fsencode(s) if isinstance(s, os.PathLike) else str(s).encode("utf-8"))


def string(p):
    return ffi.string(p).decode("utf-8") if p != ffi.NULL else None


def strings(pp, n):
    """A char ** of n entries as a list of str (None for NULL entries)."""
    if pp == ffi.NULL:
        return None
    return [string(pp[i]) for i in range(n)]


# ---------------------------------------------------------------- arrays

def array_in(x, dtype, keep):
    """A cdata pointer to x's data as dtype: the array itself when its dtype
    and layout allow (no copy; C-contiguous, aligned), else one converted
    copy. keep collects what must outlive the call."""
    a = np.asarray(x)
    if a.dtype != dtype or not a.flags.c_contiguous or not a.flags.aligned:
        a = np.ascontiguousarray(a, dtype=dtype)
    keep.append(a)
    ctype = {"int32": "int32_t[]", "float64": "double[]", "float32": "float[]"}[a.dtype.name]
    if a.size == 0:  # a non-NULL pointer for an empty column (NULL means absent)
        a = np.zeros(1, dtype=a.dtype)
        keep.append(a)
    return ffi.from_buffer(ctype, a)


def strings_in(values, keep):
    """A char *[] over UTF-8 copies of values (str)."""
    bufs = [ffi.new("char[]", str(v).encode("utf-8")) for v in values]
    arr = ffi.new("char *[]", bufs) if bufs else ffi.new("char *[]", 1)
    keep.append(bufs)
    keep.append(arr)
    return arr


def array_out(ptr, n, dtype, shape=None):
    """A numpy copy of n elements at ptr (None when ptr is NULL)."""
    if ptr == ffi.NULL:
        return None
    a = np.frombuffer(ffi.buffer(ptr, n * np.dtype(dtype).itemsize), dtype=dtype).copy() if n else np.zeros(0, dtype)
    return a.reshape(shape) if shape is not None else a


def fingerprint(*parts):
    """A digest of in-memory contents (arrays, lists of str, dicts, scalars):
    whether a Book or Scenarios read from a file is still what the file holds,
    so that a results file names that file only then (its provenance)."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)

    def feed(x):
        if isinstance(x, dict):
            h.update(b"{%d" % len(x))
            for k in sorted(x, key=str):
                feed(str(k))
                feed(x[k])
        elif isinstance(x, np.ndarray):
            h.update(("a%s%s" % (x.dtype.str, x.shape)).encode())
            h.update(np.ascontiguousarray(x).tobytes())
        elif isinstance(x, (list, tuple)):
            if all(isinstance(v, str) for v in x):
                h.update(b"s%d:" % len(x) + "\x00".join(x).encode("utf-8", "surrogatepass"))
            else:
                h.update(b"[%d" % len(x))
                for v in x:
                    feed(v)
        else:
            h.update(("v" + repr(x)).encode())

    for x in parts:
        feed(x)
    return h.hexdigest()


def write_checked(path, source, view, writer):
    """writer(path, view, diag) (xm_portfolio_write / xm_scenarios_write: atomic)
    after xm_output_check: never over source, the file the contents were read
    from. view() gives (struct *, keepalive). Raises with the library's messages."""
    err = ffi.new("char[]", 1024)
    names = [cstr(source)] if source else [ffi.NULL]
    inputs = ffi.new("char *[]", names)  # points into names: both kept to the end
    st = lib.xm_output_check(cstr(path), inputs, 1, err, 1024)
    if st != XM_OK:
        raise_status(st, "output %s" % os.fspath(path), [ffi.string(err).decode()])
    p, keep = view()
    with Diag() as d:
        st = writer(cstr(path), p, d.ptr)
        msgs = d.messages()
    del keep, inputs, names
    if st != XM_OK:
        raise_status(st, "writing %s" % os.fspath(path), msgs)


# ---------------------------------------------------------------- configuration

def _text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def make_config(config=None, overrides=None):
    """An xm_config: the defaults, then config (an INI path, or a dict of
    key = value), then overrides (a dict) -- each key through xm_config_set."""
    cfg = ffi.new("xm_config *")
    lib.xm_config_default(cfg)
    err = ffi.new("char[]", 1024)
    items = []
    if config is None:
        pass
    elif isinstance(config, (str, bytes, os.PathLike)):
        st = lib.xm_config_load(cfg, cstr(config), err, 1024)
        if st != XM_OK:
            raise_status(st, "configuration %s" % os.fspath(config), [ffi.string(err).decode()])
    elif isinstance(config, dict):
        items += list(config.items())
    else:
        raise TypeError("config must be a path to an INI file or a dict of key: value, not %r" % type(config))
    items += list((overrides or {}).items())
    for k, v in items:
        st = lib.xm_config_set(cfg, cstr(k), cstr(_text(v)), err, 1024)
        if st != XM_OK:
            raise_status(st, "configuration key %s = %s" % (k, _text(v)), [ffi.string(err).decode()])
    return cfg


def config_text(cfg):
    p = lib.xm_config_to_ini(cfg)
    if p == ffi.NULL:
        raise MemoryError("xm_config_to_ini")
    try:
        return ffi.string(p).decode()
    finally:
        lib.free(p)


# ---------------------------------------------------------------- devices

def _device_dict(d):
    return {
        "backend": "cpu" if d.backend == 0 else "opencl",
        "spec": string(d.spec), "platform_index": d.platform_index, "device_index": d.device_index,
        "is_gpu": bool(d.is_gpu), "platform": string(d.platform), "name": string(d.name),
        "vendor": string(d.vendor), "version": string(d.version), "driver": string(d.driver),
        "compute_units": int(d.compute_units), "global_mem": int(d.global_mem),
        "local_mem": int(d.local_mem), "max_alloc": int(d.max_alloc), "fp64": bool(d.fp64),
    }


def devices():
    """Every device xmargin can run on (xm_devices_list): OpenCL devices, then "cpu"."""
    out = ffi.new("xm_device_info **")
    n = ffi.new("size_t *")
    st = lib.xm_devices_list(out, n)
    if st != XM_OK:
        raise_status(st, "xm_devices_list")
    try:
        return [_device_dict(out[0][i]) for i in range(n[0])]
    finally:
        lib.xm_devices_free(out[0])


class Context:
    """A compute context on one device (xm_ctx_create): "auto", "cpu", "opencl"
    or "opencl:<platform>.<device>". Its kernels are built once; runs reuse it."""

    def __init__(self, device="auto", threads=0, mem_limit=0, verbose=False):
        opt = ffi.new("xm_options *")
        lib.xm_options_default(opt)
        self._dev = cstr(device)
        opt.device = self._dev
        opt.threads = int(threads)
        opt.mem_limit = int(mem_limit)
        opt.verbose = 1 if verbose else 0
        pp = ffi.new("xm_ctx **")
        st = lib.xm_ctx_create(pp, opt)
        self._ctx = pp[0]
        if st != XM_OK:
            detail = string(lib.xm_ctx_last_error(self._ctx)) if self._ctx != ffi.NULL else ""
            lib.xm_ctx_destroy(self._ctx)
            self._ctx = ffi.NULL
            raise_status(st, "device %r" % device, detail=detail)
        self.device_request = device

    @property
    def device(self):
        return _device_dict(lib.xm_ctx_device(self._ctx)[0])

    @property
    def choice(self):
        return string(lib.xm_ctx_choice(self._ctx))

    def device_text(self):
        """What the CLI records as the results' `device` attribute."""
        d = self.device
        return "%s: %s [%s]" % (d["backend"], d["name"], d["platform"])

    def last_error(self):
        return string(lib.xm_ctx_last_error(self._ctx))

    def close(self):
        if self._ctx != ffi.NULL:
            lib.xm_ctx_destroy(self._ctx)
            self._ctx = ffi.NULL

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


_contexts = {}


def context_for(device, threads=0, mem_limit=0):
    """A Context, reused across runs for the same (device, threads, mem_limit)."""
    if isinstance(device, Context):
        return device
    key = (str(device), int(threads), int(mem_limit))
    c = _contexts.get(key)
    if c is None:
        c = _contexts[key] = Context(device, threads=threads, mem_limit=mem_limit)
    return c
