"""Operations room: health checks, metrics, logging and status views."""
