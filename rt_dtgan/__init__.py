"""rt-dtgan: real-time Dynamics Transfer GAN (Baddar and Ro, 2017) as a streaming system."""

__version__ = "0.1.0"
