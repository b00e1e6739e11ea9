"""Small values used in many places (month, DOI, address, clock): leaf modules, none of ours imported."""
