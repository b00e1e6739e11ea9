"""Small values parsed in many places (a month, a DOI): leaf modules importing nothing of ours."""
