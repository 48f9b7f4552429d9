// Entry point of plain pages (errors): nothing to run beyond the shared stylesheet.
export {};
