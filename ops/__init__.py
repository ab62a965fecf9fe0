"""Operations: the deploy plan, the local function server, the workflow runner."""
