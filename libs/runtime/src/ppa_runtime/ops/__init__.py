"""Operations: what the event dashboard and the operators' commands do (read topics, health, dead letters, rebuilds)."""
