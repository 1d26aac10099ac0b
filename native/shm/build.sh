#!/bin/sh
# Rebuild prebuilt/linux-x64.node from shm.c (needs gcc and Node's headers, which a Node install carries in
# include/node). The result is committed, so installing the project needs no compiler.
set -eu
cd "$(dirname "$0")"
NODE_INCLUDE="$(dirname "$(readlink -f "$(command -v node)")")/../include/node"
mkdir -p prebuilt
gcc -O3 -Wall -Wextra -fPIC -shared -fvisibility=hidden -I"$NODE_INCLUDE" -o prebuilt/linux-x64.node shm.c
strip prebuilt/linux-x64.node
ls -l prebuilt/linux-x64.node
