#!/usr/bin/env python3
"""Writes OUTPUT, a header that defines CMF_BUILD_ID: what cmf's internal modules (cmf-git.so,
cmf-ssh.so, cmf-hdf5.so) and the binary that loads them must agree on.

They pass C++ types to each other, so a module is usable only when it was compiled from the same
headers, by the same compiler, with the same options. The id is a hash of exactly that: SALT (the
compiler, its version and the build options) and every header under the given folders. Run at
every build; the file is rewritten only when the id changes, so an unchanged tree rebuilds
nothing.

usage: module_build_id.py OUTPUT SALT FOLDER...
"""
import hashlib
import os
import sys


def main():
    output, salt, folders = sys.argv[1], sys.argv[2], sys.argv[3:]
    digest = hashlib.sha256(salt.encode())
    for folder in sorted(folders):
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                if not name.endswith(('.h', '.hpp')):
                    continue
                path = os.path.join(root, name)
                digest.update(os.path.relpath(path, folder).encode() + b'\0')
                with open(path, 'rb') as f:
                    digest.update(f.read())
                digest.update(b'\0')
    text = ('// Written by dvc_like/module_build_id.py: do not edit.\n'
            '#pragma once\n'
            '#define CMF_BUILD_ID "%s"\n' % digest.hexdigest()[:24])
    try:
        with open(output) as f:
            if f.read() == text:
                return
    except OSError:
        pass
    with open(output + '.tmp', 'w') as f:
        f.write(text)
    os.replace(output + '.tmp', output)


if __name__ == '__main__':
    main()
