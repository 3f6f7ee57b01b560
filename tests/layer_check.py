#!/usr/bin/env python3
"""The layer check (doc/architecture.md): reads every #include "..." of cmf's own code and fails
when one points the wrong way between layers, or when the includes between components form a
cycle.

Layers, lowest first; each may include its own headers and those listed for it:
  vocabulary  dvc_like/include/cmf/status.h: Status and Result, which every layer but the
              plugins speaks
  data        dvc_like/             (cmf/data/*.h)
  core        core/include, src     data, plugin_api
  cli         cmf_cli/              core, plugin_api (not data: core's headers expose what it needs)
  plugin_api  core/plugin_api/      nothing
  plugins     plugins/              plugin_api only
The generated cmf_config.h and cmf_build_id.h belong to no layer (every layer but the plugins may
include them).

Tests and benchmarks may include only public headers (never core/src or dvc_like/src).

A component is a header and the source file of the same name (core/include/cmf/store.h and
core/src/store.cpp are one); a cycle is a set of components that include each other, directly or
not. Prints every finding and exits 1 when there is one; tests/meson.build runs it as the test
"layers".

usage: layer_check.py SOURCE_ROOT
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
GENERATED = {'cmf_config.h', 'cmf_build_id.h'}

# (path prefix, layer), longest prefix first.
LAYER_OF_PATH = [
    ('dvc_like/include/cmf/status.h', 'vocabulary'),
    ('core/plugin_api/', 'plugin_api'),
    ('dvc_like/', 'data'),
    ('core/', 'core'),
    ('cmf_cli/', 'cli'),
    ('plugins/', 'plugins'),
]

ALLOWED = {
    'vocabulary': set(),
    'data': {'data', 'vocabulary', 'generated'},
    'core': {'core', 'data', 'vocabulary', 'plugin_api', 'generated'},
    'cli': {'cli', 'core', 'vocabulary', 'plugin_api', 'generated'},
    'plugin_api': {'plugin_api'},
    'plugins': {'plugins', 'plugin_api'},
}

# Where a quoted include that is not relative to its file is looked for: each layer's include
# path as the build gives it (meson.build files).
SEARCH = {
    'vocabulary': [],
    'data': ['dvc_like/include', 'dvc_like/src'],
    'core': ['core/include', 'core/plugin_api', 'core/src', 'dvc_like/include'],
    'cli': ['cmf_cli', 'core/include', 'core/plugin_api', 'dvc_like/include'],
    'plugin_api': ['core/plugin_api'],
    'plugins': ['plugins/common', 'plugins/ml', 'plugins/md', 'plugins/aimd', 'plugins/dkl',
                'plugins/reptile', 'core/plugin_api'],
}


def layer_of(rel):
    for prefix, layer in LAYER_OF_PATH:
        if rel.startswith(prefix):
            return layer
    return None


# A module's table header is the private seam of the component whose calls it serves across
# dlopen (as store_impl.h is Store's): the facade on one side, the module's code on the other.
SEAM_OF = {
    'core/src/git_module.h': 'metalog',
    'dvc_like/src/hdf5_module.h': 'hdf5_slice',
}


def component_of(rel):
    """core/include/cmf/store.h, core/src/store.cpp and store_impl.h -> core:store."""
    stem = os.path.splitext(os.path.basename(rel))[0]
    stem = SEAM_OF.get(rel, stem)
    for suffix in ('_impl', '_facade'):
        if stem.endswith(suffix):
            stem = stem[:-len(suffix)]
    layer = layer_of(rel)
    if layer in ('core', 'data', 'vocabulary'):
        return '%s:%s' % (layer, stem)
    return os.path.splitext(rel)[0]


def sources(root):
    for top in ('dvc_like', 'core', 'cmf_cli', 'plugins'):
        for dirpath, dirs, files in os.walk(os.path.join(root, top)):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(('.h', '.cpp', '.hpp', '.cc')):
                    path = os.path.join(dirpath, name)
                    yield os.path.relpath(path, root)


def resolve(root, rel, target, layer):
    here = os.path.normpath(os.path.join(os.path.dirname(rel), target))
    if os.path.isfile(os.path.join(root, here)):
        return here
    for folder in SEARCH[layer]:
        candidate = os.path.normpath(os.path.join(folder, target))
        if os.path.isfile(os.path.join(root, candidate)):
            return candidate
    return None


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else '.'
    findings = []
    edges = {}
    for rel in sources(root):
        layer = layer_of(rel)
        with open(os.path.join(root, rel), encoding='utf-8', errors='replace') as f:
            text = f.read()
        for match in INCLUDE.finditer(text):
            target = match.group(1)
            line = text.count('\n', 0, match.start()) + 1
            if target in GENERATED:
                if 'generated' not in ALLOWED[layer]:
                    findings.append('%s:%d: %s layer includes the generated "%s"'
                                    % (rel, line, layer, target))
                continue
            found = resolve(root, rel, target, layer)
            if found is None:
                findings.append('%s:%d: "%s" is not on the %s layer\'s include path'
                                % (rel, line, target, layer))
                continue
            to_layer = layer_of(found)
            if to_layer not in ALLOWED[layer]:
                findings.append('%s:%d: the %s layer includes %s (%s layer)'
                                % (rel, line, layer, found, to_layer))
            a, b = component_of(rel), component_of(found)
            if a != b:
                edges.setdefault(a, set()).add(b)
    # Tests and benchmarks reach the code through its public headers only.
    for top in ('tests', 'bench'):
        for dirpath, dirs, files in os.walk(os.path.join(root, top)):
            dirs.sort()
            for name in sorted(files):
                if not name.endswith(('.h', '.cpp')):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                with open(path, encoding='utf-8', errors='replace') as f:
                    text = f.read()
                for match in INCLUDE.finditer(text):
                    if re.search(r'(^|/)(core|dvc_like)/src/', match.group(1)):
                        line = text.count('\n', 0, match.start()) + 1
                        findings.append('%s:%d: includes the private header "%s"'
                                        % (rel, line, match.group(1)))
    for cycle in cycles(edges):
        findings.append('include cycle among: ' + ', '.join(cycle))
    for f in findings:
        print(f)
    print('layer check: %d files, %d findings' % (sum(1 for _ in sources(root)), len(findings)))
    return 1 if findings else 0


def cycles(edges):
    """Strongly connected components of more than one node (Tarjan), each as a list."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


if __name__ == '__main__':
    sys.exit(main())
