package backup

import (
	"cmp"
	"slices"
	"time"
)

// DefaultKeep is the number of most recent backups retention keeps.
const DefaultKeep = 10

// DefaultMaxAge is the age beyond which retention removes backups.
const DefaultMaxAge = 7 * 24 * time.Hour

// Entry is one backup known to retention.
type Entry struct {
	// ID identifies the backup.
	ID string
	// Path is where the backup file is.
	Path string
	// CreatedAt is when the backup was taken.
	CreatedAt time.Time
	// Size is the file size in bytes.
	Size int64
}

// Prune returns the entries retention removes, oldest first: every entry
// beyond the keep most recent, and every entry older than maxAge at now. The
// newest entry is never removed, whatever keep and maxAge say. keep < 1 is
// treated as 1; maxAge <= 0 disables the age rule. Entries are ordered by
// CreatedAt, then ID; the input slice is not modified.
func Prune(entries []Entry, keep int, maxAge time.Duration, now time.Time) (remove []Entry) {
	if len(entries) == 0 {
		return nil
	}
	keep = max(keep, 1)
	sorted := slices.Clone(entries)
	// Newest first.
	slices.SortStableFunc(sorted, func(a, b Entry) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	for i, e := range sorted {
		if i == 0 {
			continue
		}
		if i >= keep || (maxAge > 0 && now.Sub(e.CreatedAt) > maxAge) {
			remove = append(remove, e)
		}
	}
	slices.Reverse(remove)
	return remove
}
