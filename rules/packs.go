package rules

import (
	"embed"
	"io/fs"
)

// packs holds the shipped rule packs.
//
//go:embed packs/*.toml
var packs embed.FS

// Packs returns the shipped rule packs as a file system of NAME.toml files.
func Packs() fs.FS {
	sub, err := fs.Sub(packs, "packs")
	if err != nil {
		panic(err) // the directory is embedded
	}
	return sub
}

// Shipped loads every shipped pack into one set. Errors name files as packs/NAME.toml.
func Shipped() (*Set, error) { return LoadSources(ShippedSource()) }

// ShippedSource is the shipped packs as a Source, to load them together with other rule
// files (such as waivers for shipped rules). Errors name files as packs/NAME.toml.
func ShippedSource() Source { return Source{FS: packs, Path: "packs"} }
