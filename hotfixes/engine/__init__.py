"""The diff and three-way merge engine: pure Python (merge3, patiencediff), no Django.

- `treediff`: which files differ between two manifests (path -> content hash).
- `matching`: which lines two texts have in common (patience diff, anchored on long common stretches).
- `linediff`: the line diff of one file, in hunks with line numbers.
- `textmerge`: the three-way merge of one text file, in regions to take or resolve.
- `treemerge`: the three-way merge of a module's files, and applying the user's selection.
"""
