"""The agent script loaded by path, and a stand-in for the server's manifests and archives.

The agent is one file copied to servers, not a package, so the tests import it the
way an operator runs it: from agent/stageboard_agent.py.
"""

import hashlib
import importlib.util
import io
import stat
import sys
import warnings
import zipfile
from pathlib import Path

AGENT_PATH = Path(__file__).resolve().parents[2] / "agent" / "stageboard_agent.py"


def load_agent():
    if "stageboard_agent" in sys.modules:
        return sys.modules["stageboard_agent"]
    spec = importlib.util.spec_from_file_location("stageboard_agent", AGENT_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["stageboard_agent"] = module
    spec.loader.exec_module(module)
    return module


sa = load_agent()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zip_of(entries) -> bytes:
    """A zip of (name, bytes) pairs, or (name, bytes, unix mode) for symlinks and other kinds."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a name twice is one of the hostile cases
        for entry in entries:
            name, data, mode = (*entry, stat.S_IFREG | 0o644)[:3]
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def manifest_of(module: str, version: int, files: dict) -> dict:
    entries = [{"path": path, "sha256": sha(data), "size": len(data)} for path, data in files.items()]
    return {
        "module": module,
        "version": version,
        "tree_hash": sa.tree_hash({path: sha(data) for path, data in files.items()}),
        "files": entries,
    }


class Source:
    """What the server would serve for each module version; counts what the agent asks for."""

    def __init__(self):
        self.served = {}
        self.requests = []

    def add(self, module, version, files, *, manifest=None, archive=None):
        """Serve `files` (path -> bytes), or a hostile `manifest` and/or `archive` in their place.

        Returns the desired state's entry for the module: its tree hash is the one the
        manifest states, so a hostile manifest is refused for what it holds, not for its hash.
        """
        manifest = manifest or manifest_of(module, version, files)
        archive = zip_of(files.items()) if archive is None else archive
        self.served[(module, version)] = (manifest, archive)
        return {"name": module, "version": version, "tree_hash": manifest["tree_hash"]}

    def manifest(self, module, version):
        self.requests.append(("manifest", module, version))
        return self.served[(module, version)][0]

    def archive(self, module, version, limit):
        self.requests.append(("archive", module, version))
        return self.served[(module, version)][1]


def desired(name, version, modules, deployment=1, generation=0):
    return {
        "name": name,
        "version": version,
        "deployment": deployment,
        "generation": generation,
        "modules": modules,
    }


def make_agent(root, **options):
    lines = []
    agent = sa.Agent("http://127.0.0.1:9", "sba_test", str(root), log=lines.append, **options)
    agent.lines = lines
    return agent
