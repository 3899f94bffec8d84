"""The DCMPNet networks, forward passes only: layers, the guide U-Net, the dehazing and DE networks.

Nothing here reads or writes files, trains or runs the inference engine.
"""
