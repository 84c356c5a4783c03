import torch

torch.manual_seed(0)
weight = torch.zeros(1, requires_grad=True)
optimizer = torch.optim.SGD([weight], lr=0.1)
for _ in range(10):
    optimizer.zero_grad()
    loss = (weight - 1) ** 2
    loss.backward()
    optimizer.step()
