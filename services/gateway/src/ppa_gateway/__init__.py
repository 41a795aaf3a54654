"""Gateway: the HTTP edge — JSON API, agency portal, My Page and dashboard pages."""
