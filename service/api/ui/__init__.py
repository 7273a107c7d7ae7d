"""The zoo in a browser: a static single-page client of the JSON API, no build step."""
