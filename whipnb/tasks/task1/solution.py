import torch
import torch.nn as nn

from whipnb.tasks.task1.data import make_data

torch.manual_seed(0)
X_train, y_train, X_val, y_val = make_data()

model = nn.Linear(2, 2)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

losses = []
for epoch in range(20):
    order = torch.randperm(len(X_train))
    epoch_loss = 0.0
    for start in range(0, len(X_train), 32):
        batch = order[start:start + 32]
        optimizer.zero_grad()
        loss = criterion(model(X_train[batch]), y_train[batch])
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item() * len(batch)
    losses.append(epoch_loss / len(X_train))

with torch.no_grad():
    val_acc = (model(X_val).argmax(dim=1) == y_val).float().mean().item()

print(f"LOSSES:{[round(value, 4) for value in losses]}")
print(f"VAL_ACC:{val_acc:.4f}")
