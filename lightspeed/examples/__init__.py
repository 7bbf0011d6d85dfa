"""
Example lightspeed apps, installed with the package: ``twistd lightspeed --app
lightspeed.examples.pingpong:server`` works from any directory.
"""
