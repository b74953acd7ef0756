package dr

import (
	"context"
	"errors"
)

var errPGTodo = errors.New("dr: PostgreSQL backups are not implemented yet")

func backupPostgres(ctx context.Context, dsn, out string, opts *BackupOptions) (*Manifest, error) {
	return nil, errPGTodo
}

func drillPostgres(ctx context.Context, data string, m *Manifest, r *Report, opts *DrillOptions) error {
	return errPGTodo
}
