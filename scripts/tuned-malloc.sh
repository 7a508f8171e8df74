#!/bin/sh
# Runs a command with the glibc malloc settings the service is measured with. glibc reads them when the process
# starts, so they cannot come from plugins/app/config.ts. With glibc's defaults, the upload, multipart and image
# buffers of every request went through mmap/munmap: at 8 connections the service used 12.1 ms of CPU per 384 px
# request, 9.0 ms with these settings, at about the same RSS (README, "Allocator settings"). Values set by the
# caller win.
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-4194304}"
export MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-67108864}"
exec "$@"
