//! A throwaway PostgreSQL cluster (initdb in a temp dir, free port, gone on drop).
