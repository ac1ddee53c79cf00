"""Reports: HTML pages, charts and verdict sentences built from typed results."""
