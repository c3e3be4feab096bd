"""Renderers: console tables, JSON, Markdown, JUnit, HTML, CycloneDX."""
