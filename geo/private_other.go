//go:build !linux

package geo

import "os"

// mapCopy: O_TMPFILE is Linux's; elsewhere the copy is anonymous memory
// (readPrivate's fallback).
func mapCopy(*os.File, int) ([]byte, bool) { return nil, false }

// dropPages: only a shared copy (mapCopy's, Linux only) has pages to drop.
func dropPages([]byte, bool) {}
