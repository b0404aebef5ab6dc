"""The merge selection: which source changes a merge takes and how its conflicts are resolved.

One form reads the posted choices and presents them back, so the field names
live here only. They use positions, never paths (a path may hold any
character): take-module-M, take-file-M-F, take-hunk-M-F-R, resolve-M-F-R
("target", "source" or "edit") with edit-M-F-R, and choice-M-F, where M is the
module's id, F the file's position in the merge and R the region's index.
"""

from __future__ import annotations

from django import forms

from hotfixes.engine.linediff import diff_lines, split_lines
from hotfixes.engine.treemerge import CHOICES, Selection
from hotfixes.merging import MAX_COMMENT, Outcome, PreparedMerge
from lifecycle.line_endings import keep_line_endings, main_line_ending

RESOLUTIONS = [("target", "target"), ("source", "source"), ("edit", "edit")]


class MergeSelectionForm(forms.Form):
    """A prepared merge's selection. Until the page's form is submitted, every source change is taken
    and no conflict is resolved; a submitted form takes exactly what is ticked."""

    comment = forms.CharField(required=False, max_length=MAX_COMMENT, strip=False)

    def __init__(self, prepared: PreparedMerge, data=None):
        super().__init__(data)
        self.prepared = prepared
        # A plain post without the page's form (a script, an old page) takes everything, as a visit does.
        self.submitted = data is not None and data.get("submitted") == "1"
        for merge in prepared.modules:
            m = merge.module.pk
            self._checkbox(f"take-module-{m}")
            for f, file in enumerate(merge.files):
                if not file.is_conflict:
                    self._checkbox(f"take-file-{m}-{f}")
                for r in file.source_changes:
                    self._checkbox(f"take-hunk-{m}-{f}-{r}")
                for r in file.conflicts:
                    self.fields[f"resolve-{m}-{f}-{r}"] = forms.ChoiceField(
                        choices=RESOLUTIONS, required=False
                    )
                    self.fields[f"edit-{m}-{f}-{r}"] = forms.CharField(required=False, strip=False)
                if file.kind in CHOICES:
                    choices = [(choice, choice) for choice in CHOICES[file.kind]]
                    self.fields[f"choice-{m}-{f}"] = forms.ChoiceField(choices=choices, required=False)

    def _checkbox(self, name):
        self.fields[name] = forms.BooleanField(required=False, initial=True)

    def value(self, name):
        """The field's value: as posted once the form was submitted, else its initial value."""
        if not self.submitted:
            return self.fields[name].initial
        if not hasattr(self, "cleaned_data"):
            self.full_clean()
        return self.cleaned_data.get(name, self.fields[name].initial)

    def problem(self) -> str | None:
        """Why the posted form cannot be read (a value the page never offers), or None."""
        if self.is_bound and not self.is_valid():
            if "comment" in self.errors:
                return f"A comment has at most {MAX_COMMENT} characters; nothing was merged."
            return "The form holds a choice the page does not offer; nothing was merged."
        return None

    @property
    def comment_text(self) -> str:
        return (self.data.get("comment") or "") if self.is_bound else ""

    def selections(self) -> dict[int, tuple[bool, Selection]]:
        """module id -> (taken at all, Selection): what merging.evaluate and merging.perform take."""
        selections = {}
        for merge in self.prepared.modules:
            m = merge.module.pk
            selection = Selection()
            for f, file in enumerate(merge.files):
                if not file.is_conflict and not self.value(f"take-file-{m}-{f}"):
                    selection.skipped.add(file.path)
                    continue
                if file.kind == "text":
                    if self.submitted:
                        selection.regions[file.path] = {
                            r for r in file.source_changes if self.value(f"take-hunk-{m}-{f}-{r}")
                        }
                    for r in file.conflicts:
                        lines = self._resolution(merge, f, file, r)
                        if lines is not None:
                            selection.resolutions.setdefault(file.path, {})[r] = lines
                elif file.kind in CHOICES:
                    choice = self.value(f"choice-{m}-{f}") if self.submitted else ""
                    if choice:
                        selection.choices[file.path] = choice
            selections[m] = (bool(self.value(f"take-module-{m}")), selection)
        return selections

    def _resolution(self, merge, f, file, r) -> list[str] | None:
        """The lines chosen for conflict `r`, or None while it is unresolved."""
        m, region = merge.module.pk, file.regions[r]
        how = self.value(f"resolve-{m}-{f}-{r}") if self.submitted else ""
        if how == "target":
            return list(region.target)
        if how == "source":
            return list(region.source)
        if how != "edit":
            return None
        # A browser sends every line break as CRLF: the edit takes the file's own line endings.
        original = merge.tree.read(file.target_hash or file.source_hash)
        text = keep_line_endings(original, self.value(f"edit-{m}-{f}-{r}") or "").decode("utf-8")
        lines = split_lines(text)
        ends_lines = any(line.endswith("\n") for line in region.target + region.source)
        if lines and not lines[-1].endswith("\n") and ends_lines:
            lines[-1] += main_line_ending(original)
        return lines

    def rows(self, outcome: Outcome | None) -> list[dict]:
        """Nested rows for the merge template: modules, files and regions, with field names and values."""
        selections = self.selections()
        modules = []
        for merge in self.prepared.modules:
            m = merge.module.pk
            taken, selection = selections[m]
            merged = outcome.merged.get(m) if outcome else None
            unresolved = {(u.path, u.index) for u in (merged.unresolved if merged else [])}
            files = []
            for f, file in enumerate(merge.files):
                skipped = file.path in selection.skipped
                files.append(
                    {
                        "f": f,
                        "file": file,
                        "name": f"take-file-{m}-{f}",
                        "taken": not skipped,
                        "regions": [
                            self._region_row(m, f, file, region, selection, unresolved)
                            for region in file.regions
                        ],
                        "choice_name": f"choice-{m}-{f}",
                        "choice": selection.choices.get(file.path, ""),
                        "unresolved": (file.path, None) in unresolved,
                        "preview": _preview(merge, file, merged) if taken and not skipped else None,
                    }
                )
            modules.append(
                {
                    "merge": merge,
                    "name": f"take-module-{m}",
                    "taken": taken,
                    "files": files,
                    "complete": outcome.complete.get(m) if outcome else None,
                }
            )
        return modules

    def _region_row(self, m, f, file, region, selection, unresolved) -> dict:
        r = region.index
        names = {
            "take": f"take-hunk-{m}-{f}-{r}",
            "resolve": f"resolve-{m}-{f}-{r}",
            "edit": f"edit-{m}-{f}-{r}",
        }
        conflict = region.kind == "conflict"
        return {
            "region": region,
            "r": r,
            "names": names,
            "checked": region.kind == "source"
            and r in selection.regions.get(file.path, set(file.source_changes)),
            "resolution": (self.value(names["resolve"]) or "") if conflict and self.submitted else "",
            "edit": (
                (self.value(names["edit"]) if self.submitted else "".join(region.source)) if conflict else ""
            ),
            "unresolved": (file.path, r) in unresolved,
        }


def _preview(merge, file, merged):
    """The line diff of what the merge changes in the target's file, or None when it changes nothing."""
    if not merged or merged.files is None:
        return None
    before = merge.tree.read(file.target_hash) if file.target_hash else None
    after = merged.files.get(file.path)
    if isinstance(after, str):  # kept whole: a hash, of a file prepare has read (the source changed it)
        after = merge.tree.read(after)
    return diff_lines(before, after) if before != after else None
