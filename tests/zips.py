"""Real zip files for tests, built in memory."""

import io
import zipfile


def make_zip(files, *, mode=None):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode is not None:
                info.external_attr = mode << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def symlink_zip():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ok.py", "x = 1\n")
        link = zipfile.ZipInfo("link")
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/passwd")
    return buffer.getvalue()


def corrupt_zip():
    data = bytearray(make_zip({"a.py": "print('hello world')\n" * 50}))
    # Flip a byte inside the compressed data so the CRC check fails on reading.
    data[40] ^= 0xFF
    return bytes(data)


def zip_bomb(size=60 * 1024 * 1024):
    buffer = io.BytesIO()
    chunk = b"\0" * (1024 * 1024)
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("zeros.bin", "w", force_zip64=True) as entry,
    ):
        for _ in range(size // len(chunk)):
            entry.write(chunk)
    return buffer.getvalue()


HOSTILE = {
    "not a zip": (b"this is not a zip file", "not_a_zip"),
    "corrupt": (corrupt_zip, "corrupt_zip"),
    "truncated": (lambda: make_zip({"a.py": "x" * 5000})[:-30], None),
    "parent path": (lambda: make_zip({"../evil.py": "x"}), "unsafe_path"),
    "absolute path": (lambda: make_zip({"/etc/cron.d/evil": "x"}), "unsafe_path"),
    "backslash path": (lambda: make_zip({"..\\evil.py": "x"}), "unsafe_path"),
    "symlink": (symlink_zip, "symlink"),
    "case duplicate": (lambda: make_zip({"Cart.py": "a", "cart.py": "b"}), "duplicate_path"),
    "empty": (lambda: make_zip({}), "empty"),
    "zip bomb": (zip_bomb, None),
}


def hostile(name):
    data, code = HOSTILE[name]
    return (data() if callable(data) else data), code
