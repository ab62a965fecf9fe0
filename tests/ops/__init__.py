"""Tests of this folder's namesake in the product tree."""
